#!/usr/bin/python3
"""The module through a real nsswitch.conf, as root, inside a private mount
namespace: an overlay on the library directory receives libnss_entra.so.2
and a modified nsswitch.conf is bind-mounted over /etc/nsswitch.conf. The
machine's own /etc and /lib are never modified."""
import os
import re
import shutil
import subprocess
import tempfile

from nsstest import ADMIN_GID, SO, TOOL, Db, foreign_env, run
from taplib import run as tap_run, skip, test

OID1 = "11111111-1111-4111-8111-111111111111"
OID2 = "22222222-2222-4222-8222-222222222222"

SCRIPT = r"""
set -e
mount --make-rprivate /
mount -t overlay overlay -o lowerdir="$LIBDIR",upperdir="$WORK/upper",workdir="$WORK/work" "$LIBDIR"
cp "$SO" "$LIBDIR/libnss_entra.so.2"
mount --bind "$WORK/nsswitch.conf" /etc/nsswitch.conf
# from here on, only the programs under test (see nsstest.foreign_env)
export LD_PRELOAD="$TEST_LD_PRELOAD" ASAN_OPTIONS="$TEST_ASAN_OPTIONS"
echo "== passwd";  getent passwd alice@contoso.com
echo "== uid";     getent passwd "$ALICE_UID"
echo "== new";     getent passwd newcomer@contoso.com
echo "== group";   getent group entra-admins
echo "== id";      id alice@contoso.com
echo "== idbob";   id bob@contoso.com
echo "== ls";      ls -l "$WORK/owned"
echo "== root";    getent passwd root
echo "== enum";    getent passwd | grep -c '@contoso.com'
echo "== bad";     getent passwd 'x/../y@contoso.com' || echo "rc=$?"
"""


class Ctx:
    pass


def libdir():
    # the directory glibc loads NSS modules from: where libc itself lives
    out = run(["ldd", "/bin/true"]).stdout
    m = re.search(r"libc\.so\.6 => (\S+)", out)
    return os.path.dirname(os.path.realpath(m.group(1)))


def setup():
    if os.geteuid() != 0:
        skip("needs root for a private mount namespace")
    if shutil.which("unshare") is None:
        skip("unshare(1) not installed")
    p = subprocess.run(["unshare", "-m", "true"], stderr=subprocess.PIPE)
    if p.returncode != 0:
        skip("unshare -m failed: %s" % p.stderr.decode().strip())
    c = Ctx()
    c.db = Db()
    c.alice = c.db.add("alice@contoso.com", OID1, admin=True)
    c.bob = c.db.add("bob@contoso.com", OID2)
    c.work = tempfile.mkdtemp(prefix="nss_entra_sys.")
    os.mkdir(os.path.join(c.work, "upper"))
    os.mkdir(os.path.join(c.work, "work"))
    installed = os.path.join(libdir(), "libnss_entra.so.2")
    existed = os.path.exists(installed)
    with open("/etc/nsswitch.conf") as f:
        original = conf = f.read()
    conf = re.sub(r"^(passwd|group):(.*)$", lambda m: "%s:%s entra" % (m.group(1), m.group(2).rstrip()), conf,
                  flags=re.M)
    with open(os.path.join(c.work, "nsswitch.conf"), "w") as f:
        f.write(conf)
    owned = os.path.join(c.work, "owned")
    open(owned, "w").close()
    os.chown(owned, c.alice["uid"], ADMIN_GID)
    foreign = foreign_env(os.environ)
    env = dict(os.environ, LIBDIR=libdir(), WORK=c.work, SO=os.path.realpath(SO), ENTRA_NSS_DB_DIR=c.db.dir,
               ALICE_UID=str(c.alice["uid"]), LC_ALL="C", TEST_LD_PRELOAD=foreign.get("LD_PRELOAD", ""),
               TEST_ASAN_OPTIONS=foreign.get("ASAN_OPTIONS", ""))
    p = subprocess.run(["unshare", "-m", "sh", "-c", SCRIPT], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    if p.returncode != 0 and "overlay" in p.stderr:
        skip("overlay mount refused: %s" % p.stderr.strip())
    assert p.returncode == 0, (p.stdout, p.stderr)
    c.out = {}
    key = None
    for line in p.stdout.splitlines():
        if line.startswith("== "):
            key = line[3:]
            c.out[key] = []
        else:
            c.out[key].append(line)
    # nothing leaked out of the namespace
    assert os.path.exists(installed) == existed
    with open("/etc/nsswitch.conf") as f:
        assert f.read() == original
    return c


def teardown(c):
    c.db.cleanup()
    shutil.rmtree(c.work, ignore_errors=True)


@test
def getent_passwd_through_nsswitch(c):
    line = "alice@contoso.com:*:%d:%d:Test User:/home/alice@contoso.com:/bin/bash" % (c.alice["uid"], c.alice["uid"])
    assert c.out["passwd"] == [line], c.out
    assert c.out["uid"] == [line], c.out
    assert c.out["root"][0].startswith("root:x:0:0:"), c.out
    assert int(c.out["enum"][0]) == 2, c.out


@test
def first_login_name_through_nsswitch(c):
    assert c.out["new"][0].startswith("newcomer@contoso.com:*:"), c.out


@test
def group_and_id_through_nsswitch(c):
    assert c.out["group"] == ["entra-admins:*:%d:alice@contoso.com" % ADMIN_GID], c.out
    a = c.alice["uid"]
    assert c.out["id"] == ["uid=%d(alice@contoso.com) gid=%d(alice@contoso.com) groups=%d(alice@contoso.com),%d(entra-admins)"
                           % (a, a, a, ADMIN_GID)], c.out
    b = c.bob["uid"]
    assert c.out["idbob"] == ["uid=%d(bob@contoso.com) gid=%d(bob@contoso.com) groups=%d(bob@contoso.com)" % (b, b, b)], c.out


@test
def ls_shows_entra_owner(c):
    f = c.out["ls"][0].split()
    assert f[2] == "alice@contoso.com" and f[3] == "entra-admins", c.out


@test
def bad_name_through_nsswitch(c):
    assert c.out["bad"] == ["rc=2"], c.out


tap_run(setup, teardown)
