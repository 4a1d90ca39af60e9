#!/usr/bin/python3
"""The module through glibc's NSS under nss_wrapper (no root needed):
getent, id and ls see Entra users; bad names resolve to nothing."""
import os
import shutil
import subprocess
import tempfile

from nsstest import ADMIN_GID, SO, TOOL, Db, foreign_env, run
from taplib import run as tap_run, skip, test

OID1 = "11111111-1111-4111-8111-111111111111"
OID2 = "22222222-2222-4222-8222-222222222222"
WRAPPER = None
for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu"):
    if os.path.exists(os.path.join(d, "libnss_wrapper.so")):
        WRAPPER = os.path.join(d, "libnss_wrapper.so")
        break


class Ctx:
    pass


def setup():
    if WRAPPER is None:
        skip("libnss_wrapper.so not installed (apt-get install libnss-wrapper)")
    c = Ctx()
    c.db = Db()
    c.alice = c.db.add("alice@contoso.com", OID1, admin=True)
    c.bob = c.db.add("bob@contoso.com", OID2)
    c.tmp = tempfile.mkdtemp(prefix="nss_entra_wrap.")
    passwd = os.path.join(c.tmp, "passwd")
    group = os.path.join(c.tmp, "group")
    with open(passwd, "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nlocal:x:1000:1000:Local:/home/local:/bin/sh\n")
    with open(group, "w") as f:
        f.write("root:x:0:\nlocal:x:1000:\n")
    c.env = foreign_env(dict(os.environ, LD_PRELOAD=WRAPPER, NSS_WRAPPER_PASSWD=passwd,
                             NSS_WRAPPER_GROUP=group, NSS_WRAPPER_MODULE_SO_PATH=SO,
                             NSS_WRAPPER_MODULE_FN_PREFIX="entra", ENTRA_NSS_DB_DIR=c.db.dir,
                             LC_ALL="C"))
    return c


def teardown(c):
    c.db.cleanup()
    shutil.rmtree(c.tmp, ignore_errors=True)


def getent(c, *args, check=True):
    return run(["getent"] + list(args), env=c.env, check=check)


@test
def getent_passwd_by_name_and_uid(c):
    line = "alice@contoso.com:*:%d:%d:Test User:/home/alice@contoso.com:/bin/bash" % (c.alice["uid"], c.alice["uid"])
    assert getent(c, "passwd", "alice@contoso.com").stdout.strip() == line
    assert getent(c, "passwd", str(c.alice["uid"])).stdout.strip() == line
    # local accounts still come from files
    assert getent(c, "passwd", "local").stdout.startswith("local:x:1000:")


@test
def getent_passwd_enumerates_recorded_users(c):
    out = getent(c, "passwd").stdout
    names = [l.split(":")[0] for l in out.splitlines()]
    assert "alice@contoso.com" in names and "bob@contoso.com" in names and "root" in names, names


@test
def getent_group(c):
    assert getent(c, "group", "entra-admins").stdout.strip() == "entra-admins:*:%d:alice@contoso.com" % ADMIN_GID
    assert getent(c, "group", str(c.bob["uid"])).stdout.strip() == "bob@contoso.com:*:%d:" % c.bob["uid"]
    out = getent(c, "group").stdout
    assert "entra-admins:*:%d:alice@contoso.com" % ADMIN_GID in out, out


@test
def id_shows_uid_and_admin_group(c):
    out = run(["id", "alice@contoso.com"], env=c.env).stdout.strip()
    assert out == "uid=%d(alice@contoso.com) gid=%d(alice@contoso.com) groups=%d(alice@contoso.com),%d(entra-admins)" % (
        c.alice["uid"], c.alice["uid"], c.alice["uid"], ADMIN_GID), out
    out = run(["id", "bob@contoso.com"], env=c.env).stdout.strip()
    assert out == "uid=%d(bob@contoso.com) gid=%d(bob@contoso.com) groups=%d(bob@contoso.com)" % (
        c.bob["uid"], c.bob["uid"], c.bob["uid"]), out


@test
def ls_shows_owner_of_entra_file(c):
    if os.geteuid() != 0:
        skip("chown to an Entra uid needs root")
    path = os.path.join(c.tmp, "owned")
    open(path, "w").close()
    os.chown(path, c.alice["uid"], ADMIN_GID)
    out = run(["ls", "-l", path], env=c.env).stdout.split()
    assert out[2] == "alice@contoso.com" and out[3] == "entra-admins", out


@test
def first_login_name_resolves_before_login(c):
    out = getent(c, "passwd", "newcomer@contoso.com").stdout.strip().split(":")
    assert out[0] == "newcomer@contoso.com" and out[5] == "/home/newcomer@contoso.com", out
    later = c.db.add("newcomer@contoso.com", "33333333-3333-4333-8333-333333333333")
    assert int(out[2]) == later["uid"]
    out2 = getent(c, "passwd", str(later["uid"])).stdout
    assert out2.startswith("newcomer@contoso.com:"), out2


@test
def bad_or_foreign_names_resolve_to_nothing(c):
    for name in ["a/b@contoso.com", "../../etc@contoso.com", "x\n@contoso.com", "a" * 300 + "@contoso.com",
                 "mallory@evil.example", "breakglass", "entra-admins"]:
        p = getent(c, "passwd", name, check=False)
        assert p.returncode == 2 and p.stdout == "", (name, p.returncode, p.stdout)
    p = getent(c, "group", "../x", check=False)
    assert p.returncode == 2


@test
def large_admin_group_needs_growing_buffers(c):
    # 300 admins: gr_mem needs far more than glibc's first buffer (1 KiB);
    # getent gets ERANGE and retries with a larger one
    run([TOOL, c.db.dir, "bulk", "admin", "3000"])
    out = getent(c, "group", "entra-admins").stdout.strip()
    members = out.split(":")[3].split(",")
    assert len(members) == 1 + 300, len(members)  # bulk makes every tenth user an admin
    assert len(out) > 4096
    out = getent(c, "passwd").stdout
    assert out.count("@contoso.com") >= 3002


tap_run(setup, teardown)
