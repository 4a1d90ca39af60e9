#!/usr/bin/python3
"""entractl: users add/list/show/remove, sync, status on good and bad
databases, check with good and bad configurations."""
import os
import shutil
import tempfile

from nsstest import BUILDDIR, run
from taplib import run as tap_run, skip, test

ENTRACTL = os.path.join(BUILDDIR, "tools", "entractl")
OID = "11111111-2222-4333-8444-555555555555"
OTHER = "11111111-2222-4333-8444-666666666666"


class Ctx:
    pass


def write_config(c, name, extra=""):
    path = os.path.join(c.dir, name)
    with open(path, "w") as f:
        f.write("tenant = 72f988bf-86f1-41af-91ab-2d7cd011db47\n"
                "client_id = 04b07795-8ddb-461a-bbee-02f9e1bf7b46\n"
                "authority = https://127.0.0.1:9\n"
                "user_mapping = upn\n"
                "allowed_domains = contoso.com\n"
                "db_dir = %s/db\ncache_dir = %s/cache\nrun_dir = %s/run\n"
                "tokend_socket = %s/tokend.sock\n" % (c.dir, c.dir, c.dir, c.dir) + extra)
    os.chmod(path, 0o644)
    return path


def setup():
    if not os.path.exists(ENTRACTL):
        raise AssertionError("entractl not built")
    c = Ctx()
    c.dir = tempfile.mkdtemp(prefix="entractl_test.")
    os.chmod(c.dir, 0o755)
    c.conf = write_config(c, "pam_entra.conf")
    return c


def teardown(c):
    shutil.rmtree(c.dir, ignore_errors=True)


def ectl(c, *args, conf=None, rc=0):
    p = run([ENTRACTL, "--config", conf or c.conf] + list(args), check=False)
    assert p.returncode == rc, (args, p.returncode, p.stdout, p.stderr)
    return p


@test
def sync_then_users_add_list_show_remove(c):
    ectl(c, "sync")
    out = ectl(c, "users", "show", "alice@contoso.com").stdout
    assert "not recorded yet" in out, out
    future = int(out.split("uid ")[1].split(",")[0])
    out = ectl(c, "users", "add", "alice@contoso.com", "--object-id", OID, "--admin").stdout
    assert out.startswith("alice@contoso.com: uid %d, home /home/alice@contoso.com, admin" % future), out
    ectl(c, "users", "add", "bob@contoso.com")
    out = ectl(c, "users", "list").stdout.splitlines()
    assert out[0].split() == ["NAME", "UID", "ADMIN", "OBJECT-ID", "LAST-LOGIN"], out
    rows = [l.split() for l in out[1:]]
    assert rows[0][:4] == ["alice@contoso.com", str(future), "yes", OID], rows
    assert rows[1][0] == "bob@contoso.com" and rows[1][2] == "no" and rows[1][3] == "-", rows
    out = ectl(c, "users", "show", "ALICE@contoso.com").stdout
    assert "uid:         %d" % future in out and "member of entra-admins" in out, out
    # a different object id cannot take the name
    p = ectl(c, "users", "add", "alice@contoso.com", "--object-id", OTHER, rc=1)
    assert "bound to object id" in p.stderr, p.stderr
    # bad input
    p = ectl(c, "users", "add", "../x@contoso.com", rc=1)
    assert "not a valid user name" in p.stderr
    p = ectl(c, "users", "add", "x@contoso.com", "--object-id", "nope", rc=1)
    assert "GUID" in p.stderr
    p = ectl(c, "users", "show", "mallory@evil.example", rc=1)
    assert "no such user" in p.stderr
    # remove by object id and by name
    ectl(c, "users", "remove", OID)
    ectl(c, "users", "remove", "bob@contoso.com")
    p = ectl(c, "users", "remove", "bob@contoso.com", rc=1)
    assert "no such user" in p.stderr
    assert len(ectl(c, "users", "list").stdout.splitlines()) == 1


@test
def status_good_missing_and_corrupt(c):
    ectl(c, "sync")
    ectl(c, "users", "add", "carol@contoso.com", "--admin")
    os.makedirs(os.path.join(c.dir, "run", "1900000123", "sess1"))
    os.makedirs(os.path.join(c.dir, "cache"))
    open(os.path.join(c.dir, "cache", "0123456789abcdef.jwks.json"), "w").close()
    out = ectl(c, "status").stdout
    assert "state:      valid" in out and "users:      1 (1 admin in entra-admins" in out, out
    assert "JWKS" in out and "age" in out, out
    assert "uid 1900000123: 1 session" in out and "1 live session of 1 user" in out, out
    assert ("token service (%s/tokend.sock):\n  not running" % c.dir) in out, out
    db = os.path.join(c.dir, "db", "users.db")
    with open(db, "r+b") as f:
        f.seek(250)
        b = f.read(1)
        f.seek(250)
        f.write(bytes([b[0] ^ 0xff]))
    p = ectl(c, "status", rc=1)
    assert "INVALID: checksum mismatch" in p.stdout and "entractl sync" in p.stdout, p.stdout
    p = ectl(c, "users", "list", rc=1)
    assert "not usable" in p.stderr, p.stderr
    os.unlink(db)
    p = ectl(c, "status", rc=1)
    assert "missing" in p.stdout, p.stdout


@test
def check_reports_bad_config(c):
    bad = write_config(c, "bad.conf", "tenat = oops\n")
    p = ectl(c, "check", "--offline", conf=bad, rc=1)
    assert "PROBLEM: configuration:" in p.stdout and "tenat" in p.stdout and "fix:" in p.stdout, p.stdout
    assert "1 problem found" in p.stdout
    badrange = write_config(c, "range.conf", "uid_min = 2000\nuid_max = 1000\n")
    p = ectl(c, "check", "--offline", conf=badrange, rc=1)
    assert "PROBLEM" in p.stdout, p.stdout
    p = ectl(c, "check", "--offline", conf=os.path.join(c.dir, "absent.conf"), rc=1)
    assert "PROBLEM: configuration" in p.stdout, p.stdout


@test
def check_good_config_offline_and_unreachable_idp(c):
    if os.geteuid() != 0:
        skip("check requires a root-owned configuration")
    ectl(c, "sync")
    out = ectl(c, "check", "--offline").stdout
    assert out.strip().endswith("all checks passed"), out
    # stale rules in the database
    other = write_config(c, "other.conf", "shell = /bin/zsh\n")
    p = ectl(c, "check", "--offline", conf=other, rc=1)
    assert "older rules" in p.stdout and "entractl sync" in p.stdout, p.stdout
    # group-writable database directory
    os.chmod(os.path.join(c.dir, "db"), 0o775)
    p = ectl(c, "check", "--offline", rc=1)
    assert "database directory" in p.stdout and "chmod 0755" in p.stdout, p.stdout
    os.chmod(os.path.join(c.dir, "db"), 0o755)
    # the identity provider cannot be reached (nothing listens on 127.0.0.1:9)
    p = ectl(c, "check", rc=1)
    assert "cannot load discovery/JWKS" in p.stdout and "fix:" in p.stdout, p.stdout


@test
def usage_errors(c):
    p = run([ENTRACTL], check=False)
    assert p.returncode == 2 and "usage:" in p.stderr
    p = ectl(c, "frobnicate", rc=2)
    p = ectl(c, "users", "explode", rc=2)
    p = run([ENTRACTL, "--help"], check=False)
    assert p.returncode == 0 and "users add" in p.stdout


tap_run(setup, teardown)
