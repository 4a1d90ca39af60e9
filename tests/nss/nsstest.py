"""Shared helpers of the NSS tests: paths, a scratch database, runners."""
import os
import shutil
import subprocess
import sys
import tempfile

SRCDIR = os.environ.get("ENTRA_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILDDIR = os.environ.get("ENTRA_BUILDDIR", os.getcwd())
sys.path.insert(0, os.path.join(SRCDIR, "tests"))

SO = os.path.join(BUILDDIR, "nss_module", ".libs", "libnss_entra.so.2")
LOOKUP = os.path.join(BUILDDIR, "tests", "nss", "nss_lookup")
TOOL = os.path.join(BUILDDIR, "tests", "nss", "userdb_tool")
ADMIN_GID = 1899999999

# enum nss_status
NOTFOUND, SUCCESS, UNAVAIL, TRYAGAIN = 0, 1, -1, -2


# The shared ASan runtime when the build has --enable-sanitizers (configure
# finds it; tests/local.mk exports it), else "".
SANITIZER_PRELOAD = os.environ.get("ENTRA_SANITIZER_PRELOAD", "")


def foreign_env(env):
    """env for a program built without sanitizers (getent, id, ls) that loads
    the module: in a sanitizer build the ASan runtime must be the first
    library in the process, and that program's own leaks are not ours."""
    env = dict(env)
    if SANITIZER_PRELOAD:
        env["LD_PRELOAD"] = " ".join(p for p in (SANITIZER_PRELOAD, env.get("LD_PRELOAD", "")) if p)
        env["ASAN_OPTIONS"] = ":".join(o for o in (env.get("ASAN_OPTIONS", ""), "detect_leaks=0") if o)
    return env


def run(args, env=None, check=True, input=None):
    p = subprocess.run(args, env=env, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d): %s %s" % (args, p.returncode, p.stdout, p.stderr))
    return p


class Db:
    """A scratch database directory (world-traversable, so that other uids
    can read it in the setuid test), removed by cleanup()."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="nss_entra_test.")
        os.chmod(self.dir, 0o755)
        run([TOOL, self.dir, "sync"])

    def add(self, name, oid, admin=False):
        args = [TOOL, self.dir, "add", name, oid] + (["admin"] if admin else [])
        line = run(args).stdout.strip()
        fields = line.split(":")
        return {"name": fields[0], "uid": int(fields[1]), "gid": int(fields[2]), "home": fields[3]}

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def lookup(db_dir, *args, env_extra=None):
    """Calls the module's entry point directly; returns (status, errno, lines)."""
    env = dict(os.environ, ENTRA_NSS_DB_DIR=db_dir)
    if env_extra:
        env.update(env_extra)
    p = run([LOOKUP, SO] + list(args), env=env, check=False)
    if p.returncode != 0:
        raise AssertionError("nss_lookup %s: rc %d: %s %s" % (args, p.returncode, p.stdout, p.stderr))
    lines = p.stdout.splitlines()
    status, errno = None, None
    if lines and lines[0].startswith("STATUS"):
        parts = lines[0].split()
        status, errno = int(parts[1]), int(parts[3])
    return status, errno, lines
