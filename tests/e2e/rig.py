"""The end-to-end rig: real sshd, su, sudo and glibc NSS with pam_entra.

Used by tests/e2e/test_*.py and by scripts/demo (Debian's /usr/bin/python3
and python3-pexpect only).

Nothing here may change the real machine. Everything runs inside a private
mount namespace (and a PID namespace, so that a killed test leaves no
process behind):

    enter_namespace()   re-executes the calling script under
                        unshare --mount --propagation private --pid --fork
                        --kill-child --mount-proc; returns in the child.
    System(work)        overlays /etc, /home, /var, /run, the NSS library
                        directory (and the ancestor of the NSS database
                        directory) with upper layers on a tmpfs that exists
                        only in this namespace; then edits the merged views:
                        nsswitch.conf, /etc/pam.d/{sshd-entra,su,sudo},
                        /etc/sudoers.d, libnss_entra.so.2, a local user.
When the namespace's last process exits the mounts vanish with it; the
real /etc, /lib, /home, /var and /run are never written.

    fake = start_fake(work)        the fake Entra (tests/fake/fakectl.py)
    sshd = Sshd(system)            /usr/sbin/sshd through a symlink named
                                   sshd-entra (PAM service sshd-entra)
    Rig(with_tokend=True)          also entra-tokend on a free loopback port,
                                   its socket in the module's run directory
    p = Person(fake); s = p.ssh(port, "alice@contoso.com")   pexpect
"""
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("ENTRA_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILDDIR = os.environ.get("ENTRA_BUILDDIR") or os.getcwd()
sys.path.insert(0, os.path.join(SRCDIR, "tests"))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "fake"))

PYTHON = "/usr/bin/python3"
NS_FLAG = "ENTRA_E2E_IN_NAMESPACE"
TENANT_DOMAIN = "contoso.com"
ADMIN_ROLE = "Node.Admin"
ADMIN_GROUP = "entra-admins"
ADMIN_GID = 1899999999
UID_MIN, UID_MAX = 1900000000, 1999999999
LOCAL_USER = "e2elocal"   # an unprivileged local account (only in the namespace)
LOCAL_UID = 64999

# Programs each part needs; a test skips only when one of these is missing.
PROGRAMS = {
    "sshd": ["/usr/sbin/sshd", "ssh", "ssh-keygen"],
    "su": ["su", "setpriv"],
    "sudo": ["sudo", "visudo", "/usr/sbin/sshd", "ssh", "ssh-keygen"],
    "nss": ["getent", "id"],
    "namespace": ["unshare", "mount"],
}


class RigError(Exception):
    """Set-up failed for a reason a person should read."""


def missing_programs(*parts):
    out = []
    for part in parts:
        for prog in PROGRAMS[part]:
            if (os.path.isabs(prog) and not os.access(prog, os.X_OK)) or \
                    (not os.path.isabs(prog) and shutil.which(prog) is None):
                if prog not in out:
                    out.append(prog)
    try:
        import pexpect  # noqa: F401
    except ImportError:
        out.append("python3-pexpect")
    return out


def run(args, check=True, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("universal_newlines", True)
    kw.setdefault("timeout", 60)
    p = subprocess.run(args, **kw)
    if check and p.returncode != 0:
        raise RigError("%s failed (%d): %s%s" % (" ".join(args), p.returncode, p.stdout or "", p.stderr or ""))
    return p


# ---- the namespace ---------------------------------------------------------

def in_namespace():
    return os.environ.get(NS_FLAG) == "1" and os.getpid() == 1


def namespace_problem():
    """None if this process may enter a private namespace, else why not."""
    if os.geteuid() != 0:
        return "needs root (a private mount namespace with real sshd, su and sudo)"
    missing = missing_programs("namespace")
    if missing:
        return "missing: " + ", ".join(missing)
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
                        "--kill-child", "--mount-proc", "true"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
    if p.returncode != 0:
        return "unshare refused: " + p.stderr.strip()
    return None


def enter_namespace(argv=None):
    """Re-execute this script in private mount + PID namespaces (returns only
    there). The script runs as PID 1 of its PID namespace: when it exits or
    is killed, the kernel kills every process it started, and the mount
    namespace (with every overlay) disappears with the last of them."""
    if in_namespace():
        return
    argv = list(argv if argv is not None else [os.path.abspath(sys.argv[0])] + sys.argv[1:])
    env = dict(os.environ)
    env[NS_FLAG] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
                           "--kill-child", "--mount-proc", PYTHON] + argv, env)


def reap_orphans():
    """As PID 1 we inherit orphans; collect finished ones (never our tracked
    children: callers wait for those with their pid first)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# ---- build products ----------------------------------------------------------

def build_paths(builddir=None):
    b = builddir or BUILDDIR
    paths = {
        "pam": os.path.join(b, "pam_module", ".libs", "pam_entra.so"),
        "nss": os.path.join(b, "nss_module", ".libs", "libnss_entra.so.2"),
        "userdb_tool": os.path.join(b, "tests", "nss", "userdb_tool"),
        "entractl": os.path.join(b, "tools", "entractl"),
    }
    for key in ("pam", "nss"):
        if not os.path.exists(paths[key]):
            raise RigError("%s not built (%s)" % (key, paths[key]))
    return paths


def nss_db_dir(builddir=None):
    """The database directory compiled into libnss_entra.so.2 (processes
    without ENTRA_NSS_DB_DIR in their environment, e.g. a login shell, use
    it): $(localstatedir)/lib/pam_entra of the build."""
    b = builddir or BUILDDIR
    values = {}
    with open(os.path.join(b, "Makefile")) as f:
        for line in f:
            m = re.match(r"^(prefix|localstatedir)\s*=\s*(.*?)\s*$", line)
            if m:
                values[m.group(1)] = m.group(2)
    state = values.get("localstatedir", "${prefix}/var").replace("${prefix}", values.get("prefix", "/usr/local"))
    state = state.replace("$(prefix)", values.get("prefix", "/usr/local"))
    if not state.startswith("/") or "$" in state:
        raise RigError("cannot work out localstatedir from %s/Makefile" % b)
    return os.path.join(state, "lib", "pam_entra")


def nss_lib_dir():
    """Where glibc loads NSS modules from: the directory of libc itself."""
    out = run(["ldd", "/bin/true"]).stdout
    m = re.search(r"libc\.so\.6 => (\S+)", out)
    if not m:
        raise RigError("cannot find libc with ldd")
    return os.path.dirname(os.path.realpath(m.group(1)))


def sanitizer_runtime(nss_so):
    """For a --enable-sanitizers build: the runtime libraries the modules
    need (they are loaded into uninstrumented programs), else []."""
    p = run(["nm", "-D", "--undefined-only", nss_so], check=False)
    if "__asan_init" not in p.stdout and "__ubsan_handle" not in p.stdout:
        return []
    libs = []
    for line in run(["ldd", nss_so], check=False).stdout.splitlines():
        m = re.search(r"(lib(?:asan|ubsan)\.so[.\d]*) => (\S+)", line)
        if m:
            libs.append(m.group(2))
    if not libs:
        cc = "cc"
        with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(nss_so))),
                               "Makefile")) as f:
            for line in f:
                m = re.match(r"^CC\s*=\s*(\S+)", line)
                if m:
                    cc = m.group(1)
                    break
        rt = run([cc, "-print-file-name=libclang_rt.asan-x86_64.so"], check=False).stdout.strip()
        if os.path.isabs(rt) and os.path.exists(rt):
            libs.append(rt)
    if not libs:
        raise RigError("sanitizer build, but no sanitizer runtime found for %s" % nss_so)
    return libs


SANITIZER_OPTIONS = {"ASAN_OPTIONS": "detect_leaks=0:verify_asan_link_order=0:abort_on_error=0",
                     "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


# ---- the system inside the namespace -----------------------------------------

def write(path, text, mode=0o644, uid=0, gid=0):
    tmp = path + ".e2e-tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chown(tmp, uid, gid)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class System:
    """The namespace's view of the machine, set up for Entra logins.

    Call only inside enter_namespace(). work: a private directory (0700) for
    the rig's own files."""

    OVERLAID = ("/etc", "/home", "/var", "/run")

    def __init__(self, work, builddir=None, config_extra=""):
        if not in_namespace():
            raise RigError("System() outside the private namespace")
        self.work = work
        self.paths = build_paths(builddir)
        self.pam_so = os.path.realpath(self.paths["pam"])
        self.db_dir = nss_db_dir(builddir)
        self.lib_dir = nss_lib_dir()
        self.run_dir = "/run/pam_entra"
        self.cache_dir = os.path.join(work, "cache")
        self.conf = os.path.join(work, "pam_entra.conf")
        self.fake = None
        self.sanitizer_libs = []
        self.config_extra = config_extra
        # Everything we mount stays in this namespace: make sure nothing
        # propagates back even if unshare's default changes.
        run(["mount", "--make-rprivate", "/"])
        self.layers = os.path.join(work, "layers")
        os.makedirs(self.layers, mode=0o700, exist_ok=True)
        done = []
        for d in self.OVERLAID + (self.lib_dir,):
            self.overlay(d)
            done.append(d)
        # The NSS database directory: create it in an overlaid ancestor,
        # then give it a fresh, empty tmpfs of its own.
        anc = self.db_dir
        while not os.path.isdir(anc):
            anc = os.path.dirname(anc)
        if not any(anc == d or anc.startswith(d + "/") for d in done):
            self.overlay(anc)
        os.makedirs(self.db_dir, mode=0o755, exist_ok=True)
        run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=64m", "e2e-userdb", self.db_dir])
        os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
        for d in (self.run_dir, "/run/sshd"):
            if os.path.isdir(d):
                shutil.rmtree(d)
        os.makedirs("/run/sshd", mode=0o755)
        os.chmod("/run/sshd", 0o755)
        self.syslog = Syslog(self)

    def overlay_dev(self):
        """/dev with a private /dev/log: overlay /dev, then put its
        submounts (pts, shm, mqueue…) back from a recursive bind of the
        original. False (and no change) if the kernel refuses."""
        orig = os.path.join(self.layers, "dev-orig")
        os.makedirs(orig)
        subs = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4]
                if mp.startswith("/dev/") and mp not in subs:
                    subs.append(mp)
        subs = [m for m in subs if not any(m != o and m.startswith(o + "/") for o in subs)]
        try:
            run(["mount", "--rbind", "/dev", orig])
            self.overlay("/dev")
        except RigError:
            subprocess.run(["umount", "-R", "-l", orig], stderr=subprocess.DEVNULL)
            return False
        for m in subs:
            run(["mount", "--rbind", orig + m[len("/dev"):], m])
        return True

    def overlay(self, d):
        name = d.strip("/").replace("/", "_") or "root"
        upper = os.path.join(self.layers, name, "upper")
        workd = os.path.join(self.layers, name, "work")
        os.makedirs(upper)
        os.makedirs(workd)
        st = os.stat(d)
        os.chown(upper, st.st_uid, st.st_gid)
        os.chmod(upper, stat.S_IMODE(st.st_mode))
        run(["mount", "-t", "overlay", "overlay", "-o",
             "lowerdir=%s,upperdir=%s,workdir=%s" % (d, upper, workd), d])

    # -- the pieces ------------------------------------------------------------

    def install_sanitizer_runtime(self):
        """Every process of the namespace may load the sanitized modules
        (NSS: all of them; PAM: sshd, su, sudo, which are setuid or drop
        their environment): preload the runtime through the namespace's
        /etc/ld.so.preload, and give sessions the options through
        /etc/environment (pam_env). Leak checks are off: the programs
        themselves are not instrumented."""
        libs = self.sanitizer_libs = sanitizer_runtime(self.paths["nss"])
        if not libs:
            return
        opts = SANITIZER_OPTIONS
        os.environ.update(opts)
        write("/etc/ld.so.preload", "\n".join(libs) + "\n")
        with open("/etc/environment", "a") as f:
            for k, v in opts.items():
                f.write('%s="%s"\n' % (k, v))

    def install(self, fake):
        """Config for this fake, NSS module, nsswitch.conf, PAM services,
        sudoers, a local user, and an empty user database."""
        self.fake = fake
        self.write_config()
        shutil.copyfile(self.paths["nss"], os.path.join(self.lib_dir, "libnss_entra.so.2"))
        os.chmod(os.path.join(self.lib_dir, "libnss_entra.so.2"), 0o644)
        with open("/etc/nsswitch.conf") as f:
            conf = f.read()
        conf = re.sub(r"^(passwd|group):(.*)$",
                      lambda m: "%s:%s entra" % (m.group(1), m.group(2).rstrip()), conf, flags=re.M)
        write("/etc/nsswitch.conf", conf)
        self.write_pam_services()
        self.write_sudoers()
        self.add_local_user()
        self.init_userdb()
        # last: entractl of a sanitizer build carries its own (static) runtime
        self.install_sanitizer_runtime()

    def write_config(self):
        text = ("# pam_entra end-to-end rig (private namespace)\n"
                "tenant = %(tenant)s\n"
                "client_id = %(client)s\n"
                "authority = %(authority)s\n"
                "ca_file = %(ca)s\n"
                "cache_dir = %(cache)s\n"
                "run_dir = %(run)s\n"
                "db_dir = %(db)s\n"
                "user_mapping = upn\n"
                "allowed_domains = %(domain)s\n"
                "local_users = breakglass\n"
                "admin_roles = %(role)s\n"
                "admin_group = %(group)s\n"
                "admin_gid = %(gid)d\n"
                "uid_min = %(umin)d\n"
                "uid_max = %(umax)d\n"
                "home_template = /home/%%u\n"
                "shell = /bin/bash\n"
                "login_timeout = 60\n"
                "http_timeout = 5\n"
                "qr_code = no\n"
                "%(extra)s") % {
            "tenant": self.fake.tenant_id, "client": self.fake.client_id,
            "authority": self.fake.authority, "ca": self.fake.ca_file, "cache": self.cache_dir,
            "run": self.run_dir, "db": self.db_dir, "domain": TENANT_DOMAIN, "role": ADMIN_ROLE,
            "group": ADMIN_GROUP, "gid": ADMIN_GID, "umin": UID_MIN, "umax": UID_MAX,
            "extra": self.config_extra}
        write(self.conf, text, 0o644)

    def module_line(self, kind, control):
        return "%-8s %s %s conf=%s\n" % (kind, control, self.pam_so, self.conf)

    def write_pam_services(self):
        auth = "[success=done ignore=ignore user_unknown=ignore default=die]"
        acct = "[success=done ignore=ignore user_unknown=ignore default=bad]"
        # sshd-entra: Entra users by device code; everyone else falls
        # through to the usual Debian stack. pam_mkhomedir creates the home
        # directory at the first session (0700, owned by the user).
        sshd = ("# pam_entra e2e: sshd through a symlink named sshd-entra\n"
                + self.module_line("auth", auth)
                + "@include common-auth\n"
                + "account  required pam_nologin.so\n"
                + self.module_line("account", acct)
                + "@include common-account\n"
                + "session  optional pam_mkhomedir.so skel=/etc/skel umask=0077\n"
                + self.module_line("session", "required")
                + "@include common-session\n"
                + "session  required pam_limits.so\n"
                + "session  required pam_env.so\n"
                + "@include common-password\n")
        write("/etc/pam.d/sshd-entra", sshd)
        su = ("# pam_entra e2e: su to an Entra user\n"
              "auth     sufficient pam_rootok.so\n"
              + self.module_line("auth", auth)
              + "@include common-auth\n"
              + self.module_line("account", acct)
              + "@include common-account\n"
              + "session  required pam_env.so readenv=1\n"
              + "session  optional pam_mkhomedir.so skel=/etc/skel umask=0077\n"
              + self.module_line("session", "required")
              + "session  required pam_limits.so\n"
              + "@include common-session\n")
        write("/etc/pam.d/su", su)
        write("/etc/pam.d/su-l", su)
        # sudo authenticates the invoking Entra user with a fresh device
        # code. No pam_entra session line: sudo opens its session for the
        # target user (root), which has no Entra login.
        sudo = ("# pam_entra e2e: sudo for Entra users\n"
                "session  required pam_limits.so\n"
                + self.module_line("auth", auth)
                + "@include common-auth\n"
                + self.module_line("account", acct)
                + "@include common-account\n"
                + "@include common-session-noninteractive\n")
        write("/etc/pam.d/sudo", sudo)

    def write_sudoers(self):
        path = "/etc/sudoers.d/entra-e2e"
        text = ("# pam_entra e2e: Entra admins (app role %s) may use sudo\n"
                "%%%s ALL=(ALL) ALL\n" % (ADMIN_ROLE, ADMIN_GROUP))
        write(path, text, 0o440)
        p = run(["visudo", "-cf", path], check=False)
        if p.returncode != 0:
            raise RigError("visudo -cf %s: %s%s" % (path, p.stdout, p.stderr))
        p = run(["visudo", "-c"], check=False)
        if p.returncode != 0:
            raise RigError("visudo -c: %s%s" % (p.stdout, p.stderr))

    def add_local_user(self):
        with open("/etc/passwd", "a") as f:
            f.write("%s:x:%d:%d:e2e local user:/home/%s:/bin/bash\n" % (LOCAL_USER, LOCAL_UID, LOCAL_UID, LOCAL_USER))
        with open("/etc/group", "a") as f:
            f.write("%s:x:%d:\n" % (LOCAL_USER, LOCAL_UID))
        with open("/etc/shadow", "a") as f:
            f.write("%s:!:19000:0:99999:7:::\n" % LOCAL_USER)
        home = "/home/" + LOCAL_USER
        os.makedirs(home, exist_ok=True)
        os.chown(home, LOCAL_UID, LOCAL_UID)
        os.chmod(home, 0o755)

    def init_userdb(self):
        """An empty database carrying the config's first-login rules, so that
        names under the allowed domain resolve before their first login:
        `entractl sync`, as an administrator does after installing the
        config (tests/nss/userdb_tool, which writes the same rules, when
        entractl is not built)."""
        ctl = self.paths["entractl"]
        if os.access(ctl, os.X_OK):
            run([ctl, "--config", self.conf, "sync"])
            return
        tool = self.paths["userdb_tool"]
        if not os.access(tool, os.X_OK):
            raise RigError("neither %s nor %s is built" % (ctl, tool))
        run([tool, self.db_dir, "sync"])

    # -- looking at the result -------------------------------------------------

    def getent(self, db, key):
        p = run(["getent", db, key], check=False)
        return p.stdout.strip() if p.returncode == 0 else None

    def passwd(self, name):
        line = self.getent("passwd", name)
        if line is None:
            return None
        f = line.split(":")
        return {"name": f[0], "uid": int(f[2]), "gid": int(f[3]), "gecos": f[4], "home": f[5], "shell": f[6]}

    def session_dirs(self):
        out = []
        for root, dirs, _ in os.walk(self.run_dir):
            rel = os.path.relpath(root, self.run_dir)
            if rel.count("/") == 1 and not rel.startswith("private"):
                out.append(root)
        return out


def start_fake(work, interval=1):
    from fakectl import Fake
    fake = Fake.start(os.path.join(work, "fake"))
    fake.control("configure", {"interval": interval})
    return fake


# ---- sshd ----------------------------------------------------------------------

class Syslog:
    """Collects syslog lines (pam_syslog of the modules, su, sudo) on a
    private /dev/log, so that tests can show and assert the logged reasons."""

    def __init__(self, system):
        import threading
        self.lines = []
        self.sock = None
        if not system.overlay_dev():
            return
        if os.path.lexists("/dev/log"):
            os.unlink("/dev/log")   # the overlay's view only: a whiteout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("/dev/log")
        os.chmod("/dev/log", 0o666)
        self.path = os.path.join(system.work, "syslog")
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            line = data.decode("utf-8", "replace").rstrip("\n\0")
            line = re.sub(r"^<\d+>", "", line)
            self.lines.append(line)
            with open(self.path, "a") as f:
                f.write(line + "\n")

    def since(self, mark):
        return self.lines[mark:]

    def mark(self):
        return len(self.lines)

    def text(self, mark=0):
        return "\n".join(self.lines[mark:])


class Sshd:
    """A real OpenSSH sshd on 127.0.0.1 whose PAM service is sshd-entra."""

    def __init__(self, system, port=None):
        self.dir = os.path.join(system.work, "sshd")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.port = port or free_port()
        self.key = os.path.join(self.dir, "host_ed25519")
        self.log = os.path.join(self.dir, "sshd.log")
        self.pidfile = os.path.join(self.dir, "sshd.pid")
        self.config = os.path.join(self.dir, "sshd_config")
        self.binary = os.path.join(self.dir, "sshd-entra")
        if not os.path.exists(self.key):
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key])
        if not os.path.islink(self.binary):
            os.symlink("/usr/sbin/sshd", self.binary)
        write(self.config, "\n".join([
            "# pam_entra e2e",
            "ListenAddress 127.0.0.1",
            "Port %d" % self.port,
            "HostKey %s" % self.key,
            "PidFile %s" % self.pidfile,
            "UsePAM yes",
            "KbdInteractiveAuthentication yes",
            "PasswordAuthentication no",
            "PubkeyAuthentication no",
            "AuthenticationMethods keyboard-interactive",
            "PermitRootLogin no",
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            "LoginGraceTime 120",
            "MaxAuthTries 3",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "LogLevel VERBOSE",
            ""]), 0o600)
        p = run([self.binary, "-t", "-f", self.config], check=False)
        if p.returncode != 0:
            raise RigError("sshd -t: %s" % p.stderr.strip())
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "-D", "-e", "-f", self.config],
                                     stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RigError("sshd exited (%d): %s" % (self.proc.returncode, self.log_text()[-2000:]))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RigError("sshd did not listen on 127.0.0.1:%d" % self.port)

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


# ---- the token service ---------------------------------------------------------

def tokend_config(port, socket_path):
    """The config lines that point the module and the daemon at each other."""
    return "tokend_port = %d\ntokend_socket = %s\n" % (port, socket_path)


class Tokend:
    """entra-tokend in the foreground with the rig's config (started as the
    namespace's init's child, so it dies with the namespace)."""

    def __init__(self, system, builddir=None):
        b = builddir or BUILDDIR
        self.binary = os.path.join(b, "tools", "entra-tokend")
        if not os.access(self.binary, os.X_OK):
            raise RigError("entra-tokend not built (%s)" % self.binary)
        self.socket = system.tokend_socket
        self.port = system.tokend_port
        self.log = os.path.join(system.work, "tokend.log")
        # The socket lives in the module's run directory: create it as
        # the module would (root's, 0755) so that both trust it.
        os.makedirs(system.run_dir, mode=0o755, exist_ok=True)
        os.chmod(system.run_dir, 0o755)
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "--foreground", "--config", system.conf],
                                     stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RigError("entra-tokend exited (%d): %s" % (self.proc.returncode, self.log_text()[-2000:]))
            try:
                if self.call({"op": "list"}).get("ok"):
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        raise RigError("entra-tokend did not answer on %s" % self.socket)

    def call(self, msg):
        """One request on the root-only registration socket."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(self.socket)
            s.sendall(json.dumps(msg).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        return json.loads(data)

    def sessions(self):
        return self.call({"op": "list"}).get("sessions", [])

    def endpoint(self):
        return "http://127.0.0.1:%d/oauth2/token" % self.port

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


# ---- the person --------------------------------------------------------------------

CODE_RE = re.compile(r"enter the code ([A-Z0-9]+)")
ENTER_RE = re.compile(r"Press Enter after you have signed in: ")
BEGIN, END = "__E2E_BEGIN__", "__E2E_END__"


class Refused(Exception):
    pass


class Terminal:
    """A pexpect-driven terminal session (ssh, su, sudo) played as a person.

    seen: everything the terminal showed, for messages and the demo."""

    def __init__(self, argv, env=None, timeout=30, echo=None):
        import pexpect
        self.pexpect = pexpect
        self.argv = argv
        self.child = pexpect.spawn(argv[0], argv[1:], env=env, encoding="utf-8", codec_errors="replace",
                                   timeout=timeout, dimensions=(50, 200))
        self.echo = echo   # callable(text) to mirror output (demo)
        self.seen = ""
        self.code = None
        self.prompt_text = None

    def _take(self):
        text = (self.child.before or "") + (self.child.after if isinstance(self.child.after, str) else "")
        self.seen += text
        if self.echo:
            self.echo(text)
        return text

    def expect(self, patterns, timeout=None):
        i = self.child.expect(patterns, timeout=timeout)
        self._take()
        return i

    def wait_device_prompt(self, timeout=30):
        """Until the device-code prompt ends with "Press Enter…"; returns
        the user code. Raises Refused if the program ends first."""
        start = len(self.seen)
        i = self.expect([ENTER_RE, self.pexpect.EOF], timeout=timeout)
        if i == 1:
            raise Refused(self.seen[start:])
        text = self.seen[start:]
        m = CODE_RE.search(text)
        if not m:
            raise AssertionError("no code in the prompt: %r" % text)
        self.code = m.group(1)
        # the prompt as the person reads it: from the banner on
        b = text.find("Microsoft Entra sign-in")
        self.prompt_text = text[b:] if b >= 0 else text
        return self.code

    def press_enter(self):
        self.child.sendline("")

    def start_shell(self, timeout=30):
        """After authentication: wait for the shell, make it scriptable."""
        self.child.sendline("stty -echo; PS1='' PS2=''; unset PROMPT_COMMAND; echo __E2E''_READY__")
        i = self.expect([r"__E2E_READY__\r?\n", self.pexpect.EOF], timeout=timeout)
        if i == 1:
            raise Refused(self.seen)

    def run(self, cmd, timeout=30):
        """Runs cmd in the remote shell; returns (status, output)."""
        self.child.sendline("echo %s; %s; echo %s $?" % (BEGIN[:5] + "''" + BEGIN[5:], cmd,
                                                          END[:5] + "''" + END[5:]))
        self.child.expect(BEGIN + r"\r?\n", timeout=timeout)
        self._take()
        self.child.expect(END + r" (\d+)\r?\n", timeout=timeout)
        status = int(self.child.match.group(1))
        out = self.child.before
        self._take()
        return status, out.replace("\r\n", "\n").rstrip("\n")

    def send(self, line):
        self.child.sendline(line)

    def logout(self, timeout=15):
        self.child.sendline("exit")
        self.expect([self.pexpect.EOF], timeout=timeout)
        return self.wait()

    def wait(self, timeout=15):
        deadline = time.monotonic() + timeout
        while self.child.isalive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()
        return self.child.exitstatus if self.child.exitstatus is not None else -(self.child.signalstatus or 0)

    def finish(self, timeout=30):
        """Read to the end (a refused login); returns the exit status."""
        self.expect([self.pexpect.EOF], timeout=timeout)
        return self.wait()

    def close(self):
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()


def ssh_argv(port, user):
    return ["ssh", "-F", "/dev/null", "-tt",
            "-o", "PreferredAuthentications=keyboard-interactive",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10",
            "-p", str(port), "-l", user, "127.0.0.1"]


def clean_env(**extra):
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "TERM": "dumb", "HOME": "/root"}
    for k in SANITIZER_OPTIONS:   # set only for a sanitizer build
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(extra)
    return env


class Person:
    """Approves (or not) at the fake Entra, as on a phone."""

    def __init__(self, fake):
        self.fake = fake

    def claims(self, upn, roles=None, **more):
        c = {"preferred_username": upn}
        if roles:
            c["roles"] = list(roles)
        c.update(more)
        return c

    def approve(self, code, upn, roles=None, **more):
        return self.fake.control("approve", {"user_code": code, "claims": self.claims(upn, roles, **more)})

    def decline(self, code):
        return self.fake.control("decline", {"user_code": code})

    def counts(self):
        return self.fake.requests()["counts"]


def ssh_login(person, port, user, roles=None, approver=None, echo=None):
    """The whole interactive login; returns the Terminal at a shell."""
    t = Terminal(ssh_argv(port, user), env=clean_env(), echo=echo)
    try:
        code = t.wait_device_prompt()
        person.approve(code, approver or user, roles)
        t.press_enter()
        t.start_shell()
    except Exception:
        t.close()
        raise
    return t


def parse_env(text):
    env = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
    return env


def decode_jwt_unverified(token):
    """Header and claims of a JWS, for display only (never the signature)."""
    import base64

    def part(s):
        s += "=" * (-len(s) % 4)
        return json.loads(base64.urlsafe_b64decode(s.encode()))
    pieces = token.strip().split(".")
    if len(pieces) != 3:
        raise ValueError("not a JWS compact serialisation")
    return part(pieces[0]), part(pieces[1])


def wait_until(pred, timeout=10, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def make_work(prefix="pam_entra_e2e."):
    """A private tmpfs on an empty directory of the real /tmp: the rig's
    files (config, keys, fake's CA, logs, overlay layers) exist only in this
    namespace; a killed test leaves at most the empty directory."""
    if not in_namespace():
        raise RigError("make_work() outside the private namespace")
    d = tempfile.mkdtemp(prefix=prefix)
    run(["mount", "-t", "tmpfs", "-o", "mode=0711,size=256m", "pam-entra-e2e", d])
    return d


def cleanup_work(d):
    subprocess.run(["umount", "-l", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        os.rmdir(d)
    except OSError:
        pass


class Rig:
    """System + fake + sshd, torn down in reverse order."""

    def __init__(self, with_sshd=True, config_extra="", with_tokend=False):
        self.work = make_work()
        self.fake = self.sshd = self.tokend = None
        try:
            self.system = System(self.work, config_extra=config_extra)
            if with_tokend:
                self.system.tokend_port = free_port()
                self.system.tokend_socket = os.path.join(self.system.run_dir, "tokend.sock")
                self.system.config_extra += tokend_config(self.system.tokend_port, self.system.tokend_socket)
            self.fake = start_fake(self.work)
            self.system.install(self.fake)
            self.person = Person(self.fake)
            if with_tokend:
                self.tokend = Tokend(self.system)
            if with_sshd:
                self.sshd = Sshd(self.system)
        except Exception:
            self.close()
            raise

    def ssh(self, user, roles=None, approver=None, echo=None):
        return ssh_login(self.person, self.sshd.port, user, roles=roles, approver=approver, echo=echo)

    def ssh_terminal(self, user, echo=None):
        return Terminal(ssh_argv(self.sshd.port, user), env=clean_env(), echo=echo)

    def close(self):
        if self.sshd is not None:
            self.sshd.stop()
        if self.tokend is not None:
            self.tokend.stop()
        if self.fake is not None:
            self.fake.stop()
        reap_orphans()
        cleanup_work(self.work)


def signal_exit_on_term():
    """PID 1 ignores SIGTERM unless it has a handler: exit cleanly on it."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
