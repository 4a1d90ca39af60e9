#!/usr/bin/python3
"""Entra users through glibc NSS, after a real login.

As root (private namespaces, tests/e2e/rig.py): nsswitch.conf lists
`entra`, libnss_entra.so.2 sits in glibc's module directory; a name
resolves before the first login, alice logs in over ssh with the admin app
role, and afterwards getent, id and ls show her by name and in
entra-admins. The same database is then read through nss_wrapper by an
unprivileged process. Without root only the nss_wrapper part runs (on a
database written with tests/nss/userdb_tool)."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rig  # noqa: E402
from taplib import run as tap_run, skip, test  # noqa: E402

ALICE = "alice@contoso.com"
ALICE_OID = "11111111-1111-4111-8111-111111111111"
NSS_WRAPPER = "libnss_wrapper.so"


class Ctx:
    pass


def needs_root(c):
    if not c.root:
        skip(c.root_reason)


@test
def name_resolves_before_first_login(c):
    needs_root(c)
    c.pw0 = c.rig.system.passwd(ALICE)
    assert c.pw0 is not None and rig.UID_MIN <= c.pw0["uid"] <= rig.UID_MAX, c.pw0
    assert c.rig.system.getent("passwd", "eve@evil.example") is None


@test
def real_login_records_alice(c):
    needs_root(c)
    db = os.path.join(c.rig.system.db_dir, "users.db")
    before = os.stat(db)
    t = c.rig.ssh(ALICE, roles=[rig.ADMIN_ROLE])
    try:
        status, out = t.run("id -u")
        assert out == str(c.pw0["uid"]), out
    finally:
        t.logout()
    # the writer replaces the file (rename) on every recorded login
    after = os.stat(db)
    assert (after.st_ino, after.st_size) != (before.st_ino, before.st_size), \
        "the login did not record alice in %s\n%s" % (db, c.rig.system.syslog.text())


@test
def getent_passwd_by_name_and_uid(c):
    needs_root(c)
    uid = c.pw0["uid"]
    line = c.rig.system.getent("passwd", ALICE)
    assert line is not None and line.split(":")[2] == str(uid), line
    assert line.split(":")[4] == "Alice", line   # gecos: the name claim (the fake: "Alice")
    by_uid = c.rig.system.getent("passwd", str(uid))
    assert by_uid is not None and by_uid.split(":")[0] == ALICE, \
        "getent passwd %d (the uid of a recorded user) found %r" % (uid, by_uid)


@test
def getent_group_entra_admins(c):
    needs_root(c)
    line = c.rig.system.getent("group", rig.ADMIN_GROUP)
    assert line is not None, "no %s group" % rig.ADMIN_GROUP
    name, _, gid, members = line.split(":")
    assert int(gid) == rig.ADMIN_GID and ALICE in members.split(","), line


@test
def id_lists_the_admin_group(c):
    needs_root(c)
    p = rig.run(["id", ALICE], check=False)
    assert p.returncode == 0, p.stderr
    uid = c.pw0["uid"]
    assert p.stdout.startswith("uid=%d(%s) gid=%d(%s)" % (uid, ALICE, uid, ALICE)), p.stdout
    assert "%d(%s)" % (rig.ADMIN_GID, rig.ADMIN_GROUP) in p.stdout, p.stdout


@test
def ls_shows_the_owner_by_name(c):
    needs_root(c)
    f = os.path.join(c.rig.work, "owned-by-alice")
    open(f, "w").close()
    os.chown(f, c.pw0["uid"], rig.ADMIN_GID)
    p = rig.run(["ls", "-l", f])
    fields = p.stdout.split()
    assert fields[2] == ALICE and fields[3] == rig.ADMIN_GROUP, p.stdout


def wrapped(c, args):
    """args through nss_wrapper (module = the build's libnss_entra.so.2),
    as an unprivileged user when we are root."""
    san = rig.sanitizer_runtime(c.paths["nss"])
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LD_PRELOAD": " ".join(san + [NSS_WRAPPER]),
           "NSS_WRAPPER_PASSWD": c.wrap_passwd, "NSS_WRAPPER_GROUP": c.wrap_group,
           "NSS_WRAPPER_MODULE_SO_PATH": os.path.realpath(c.paths["nss"]),
           "NSS_WRAPPER_MODULE_FN_PREFIX": "entra", "ENTRA_NSS_DB_DIR": c.wrap_db}
    if san:
        env.update(rig.SANITIZER_OPTIONS)
    prefix = []
    if os.geteuid() == 0:
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    return subprocess.run(prefix + ["env", "-i"] + ["%s=%s" % kv for kv in env.items()] + args,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=30)


@test
def nss_wrapper_without_root(c):
    if c.wrap_skip:
        skip(c.wrap_skip)
    p = wrapped(c, ["id", "-u"])
    assert p.returncode == 0 and p.stdout.strip() != "0", (p.returncode, p.stdout, p.stderr)
    p = wrapped(c, ["getent", "passwd", ALICE])
    assert p.returncode == 0, (p.stdout, p.stderr)
    uid = int(p.stdout.split(":")[2])
    assert rig.UID_MIN <= uid <= rig.UID_MAX, p.stdout
    p = wrapped(c, ["getent", "passwd", str(uid)])
    assert p.returncode == 0 and p.stdout.startswith(ALICE + ":"), \
        ("getent passwd %d (alice's uid) under nss_wrapper" % uid, p.returncode, p.stdout, p.stderr)
    p = wrapped(c, ["getent", "group", rig.ADMIN_GROUP])
    assert p.returncode == 0 and ALICE in p.stdout.strip().split(":")[3].split(","), (p.stdout, p.stderr)
    p = wrapped(c, ["id", ALICE])
    assert p.returncode == 0 and "%d(%s)" % (rig.ADMIN_GID, rig.ADMIN_GROUP) in p.stdout, (p.stdout, p.stderr)
    p = wrapped(c, ["getent", "passwd", "eve@evil.example"])
    assert p.returncode == 2, (p.stdout, p.stderr)
    # the module is not consulted for the wrapper's own users
    p = wrapped(c, ["getent", "passwd", "root"])
    assert p.stdout.startswith("root:x:0:0:"), p.stdout


def wrapper_files(c):
    """nss_wrapper's passwd/group and a database readable by nobody."""
    if c.root:
        d = os.path.join(c.rig.work, "nsswrap")   # the namespace's tmpfs
        os.mkdir(d)
    else:
        d = tempfile.mkdtemp(prefix="pam_entra_e2e_nsswrap.")
    os.chmod(d, 0o755)
    c.wrap_dir = d
    c.wrap_passwd = os.path.join(d, "passwd")
    c.wrap_group = os.path.join(d, "group")
    with open(c.wrap_passwd, "w") as f:
        f.write("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    with open(c.wrap_group, "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    for p in (c.wrap_passwd, c.wrap_group):
        os.chmod(p, 0o644)
    if c.root:
        # the database the real login wrote (its tmpfs is 0755, file 0644)
        c.wrap_db = c.rig.system.db_dir
    else:
        c.wrap_db = os.path.join(d, "db")
        os.mkdir(c.wrap_db, 0o755)
        tool = c.paths["userdb_tool"]
        rig.run([tool, c.wrap_db, "sync"])
        rig.run([tool, c.wrap_db, "add", ALICE, ALICE_OID, "admin"])


def setup():
    c = Ctx()
    c.root_reason = None
    if not rig.in_namespace():
        missing = rig.missing_programs("nss")
        if missing:
            skip("missing: " + ", ".join(missing))
        missing = rig.missing_programs("sshd")
        c.root_reason = ("missing: " + ", ".join(missing)) if missing else rig.namespace_problem()
    c.root = rig.in_namespace()
    c.rig = None
    c.wrap_dir = None
    c.paths = rig.build_paths()
    if c.root:
        rig.signal_exit_on_term()
        c.rig = rig.Rig()
    c.wrap_skip = None
    if not any(os.path.exists(os.path.join(d, NSS_WRAPPER)) for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64",
                                                                        "/usr/lib", "/lib/x86_64-linux-gnu")):
        c.wrap_skip = "nss_wrapper (libnss-wrapper) not installed"
    if not c.wrap_skip:
        wrapper_files(c)
    return c


def teardown(c):
    if c is None:
        return
    if c.wrap_dir:
        shutil.rmtree(c.wrap_dir, ignore_errors=True)
    if c.rig is not None:
        c.rig.close()


if not rig.in_namespace() and not rig.missing_programs("nss", "sshd") and rig.namespace_problem() is None:
    rig.enter_namespace()
tap_run(setup, teardown)
