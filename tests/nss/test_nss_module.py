#!/usr/bin/python3
"""libnss_entra.so.2 itself: its exports, its dependencies, and each entry
point called directly (status codes, ERANGE, errno, bad input, bad files)."""
import os
import re
import shutil
import subprocess
import tempfile
import threading

from nsstest import (ADMIN_GID, LOOKUP, NOTFOUND, SO, SUCCESS, TOOL, TRYAGAIN, UNAVAIL, Db, lookup, run)
from taplib import run as tap_run, skip, test

OID1 = "11111111-1111-4111-8111-111111111111"
OID2 = "22222222-2222-4222-8222-222222222222"

EXPECTED = {"_nss_entra_" + n for n in (
    "getpwnam_r", "getpwuid_r", "setpwent", "getpwent_r", "endpwent",
    "getgrnam_r", "getgrgid_r", "setgrent", "getgrent_r", "endgrent", "initgroups_dyn")}


def setup():
    if not os.path.exists(SO):
        raise AssertionError("module not built: %s" % SO)
    db = Db()
    db.alice = db.add("Alice@contoso.com", OID1, admin=True)
    db.bob = db.add("bob@contoso.com", OID2)
    return db


def teardown(db):
    db.cleanup()


@test
def exports_only_nss_entra_symbols(db):
    out = run(["nm", "-D", "--defined-only", SO]).stdout
    names = {line.split()[-1] for line in out.splitlines() if line.strip()}
    names = {n.split("@")[0] for n in names}
    assert names == EXPECTED, "exported: %s" % sorted(names)


@test
def links_no_curl_jsonc_openssl(db):
    out = run(["readelf", "-d", SO]).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*?)\]", out)
    soname = re.findall(r"\(SONAME\)\s+Library soname: \[(.*?)\]", out)
    assert soname == ["libnss_entra.so.2"], soname
    for lib in needed:
        assert not re.search(r"curl|json|ssl|crypto|pam", lib), "links %s" % lib
    assert {n for n in needed if not re.match(r"lib(asan|ubsan)\.so", n)} <= {"libc.so.6"}, needed
    # no text relocations, full RELRO
    assert "TEXTREL" not in out
    assert "BIND_NOW" in out or "NOW" in out


@test
def getpwnam_recorded_case_insensitive(db):
    st, err, lines = lookup(db.dir, "pwnam", "ALICE@CONTOSO.COM")
    assert st == SUCCESS, lines
    assert lines[1] == "Alice@contoso.com:*:%d:%d:Test User:/home/alice@contoso.com:/bin/bash" % (
        db.alice["uid"], db.alice["uid"]), lines


@test
def getpwuid_and_groups(db):
    st, _, lines = lookup(db.dir, "pwuid", str(db.bob["uid"]))
    assert st == SUCCESS and lines[1].startswith("bob@contoso.com:*:%d:" % db.bob["uid"]), lines
    st, _, lines = lookup(db.dir, "pwuid", "0")
    assert st == NOTFOUND, lines
    st, _, lines = lookup(db.dir, "grnam", "entra-admins")
    assert st == SUCCESS and lines[1] == "entra-admins:*:%d:Alice@contoso.com" % ADMIN_GID, lines
    st, _, lines = lookup(db.dir, "grgid", str(ADMIN_GID))
    assert st == SUCCESS and lines[1].startswith("entra-admins:"), lines
    st, _, lines = lookup(db.dir, "grgid", str(db.bob["uid"]))
    assert st == SUCCESS and lines[1] == "bob@contoso.com:*:%d:" % db.bob["uid"], lines
    st, _, lines = lookup(db.dir, "grnam", "bob@contoso.com")
    assert st == SUCCESS and lines[1] == "bob@contoso.com:*:%d:" % db.bob["uid"], lines


@test
def initgroups_adds_admin_group_to_admins_only(db):
    st, _, lines = lookup(db.dir, "initgroups", "alice@contoso.com")
    assert st == SUCCESS and lines[1] == "GROUPS 100 %d" % ADMIN_GID, lines
    st, _, lines = lookup(db.dir, "initgroups", "bob@contoso.com")
    assert st == NOTFOUND and lines[1] == "GROUPS 100", lines
    st, _, lines = lookup(db.dir, "initgroups", "root")
    assert st == NOTFOUND, lines


@test
def first_login_name_resolves_with_future_uid(db):
    st, _, lines = lookup(db.dir, "pwnam", "carol@contoso.com")
    assert st == SUCCESS, lines
    uid = int(lines[1].split(":")[2])
    # not listed, not found by uid before the first login
    st, _, ent = lookup(db.dir, "pwent")
    assert not any(l.startswith("carol@") for l in ent), ent
    st, _, _ = lookup(db.dir, "pwuid", str(uid))
    assert st == NOTFOUND
    carol = db.add("carol@contoso.com", "33333333-3333-4333-8333-333333333333")
    assert carol["uid"] == uid
    st, _, lines = lookup(db.dir, "pwuid", str(uid))
    assert st == SUCCESS and lines[1].startswith("carol@contoso.com:"), lines
    run([TOOL, db.dir, "remove", "carol@contoso.com"])


@test
def enumeration_lists_recorded_users_and_groups(db):
    _, _, lines = lookup(db.dir, "pwent")
    names = [l.split(":")[0] for l in lines if ":" in l]
    assert names == ["Alice@contoso.com", "bob@contoso.com"], lines
    assert lines[-1] == "END %d" % NOTFOUND, lines
    _, _, lines = lookup(db.dir, "grent")
    names = [l.split(":")[0] for l in lines if ":" in l]
    assert names == ["Alice@contoso.com", "bob@contoso.com", "entra-admins"], lines


@test
def erange_then_success_with_growing_buffers(db):
    _, _, lines = lookup(db.dir, "erange", "pw", "alice@contoso.com")
    assert not any(l.startswith("BAD") for l in lines), lines
    need = [int(l.split()[1]) for l in lines if l.startswith("PW_NEEDED")]
    assert need and 40 < need[0] < 200, lines
    # first-login (synthetic) entries too
    _, _, lines = lookup(db.dir, "erange", "pw", "dan@contoso.com")
    assert any(l.startswith("PW_NEEDED") for l in lines), lines


@test
def erange_for_group_members(db):
    for name in ("entra-admins", "bob@contoso.com"):
        _, _, lines = lookup(db.dir, "erange", "gr", name)
        assert not any(l.startswith("BAD") for l in lines), lines
        need = [int(l.split()[1]) for l in lines if l.startswith("GR_NEEDED")]
        assert need and need[0] > 16, lines


@test
def bad_names_not_found(db):
    for name in ["a/b@contoso.com", "../etc/passwd", "..@contoso.com", "x\n@contoso.com",
                 "alice@contoso.com\nroot:x:0:0::/:/bin/sh", "a" * 300 + "@contoso.com", "",
                 "alice@contoso.com:", "-alice@contoso.com", "x@evil.com", "breakglass"]:
        for call in ("pwnam", "grnam", "initgroups"):
            st, err, lines = lookup(db.dir, call, name)
            assert st == NOTFOUND, (call, name, lines)


@test
def missing_database_is_notfound(db):
    empty = tempfile.mkdtemp(prefix="nss_entra_empty.")
    try:
        st, _, lines = lookup(empty, "pwnam", "alice@contoso.com")
        assert st == NOTFOUND, lines
        st, _, lines = lookup(empty, "pwent")
        assert lines[-1] == "END %d" % NOTFOUND, lines
    finally:
        shutil.rmtree(empty)


@test
def corrupt_database_is_unavail_not_a_crash(db):
    bad = tempfile.mkdtemp(prefix="nss_entra_bad.")
    try:
        with open(os.path.join(db.dir, "users.db"), "rb") as f:
            image = f.read()
        variants = [image[:100], image[:-8], b"\0" * len(image), b"ENTRAUDB" + b"\xff" * 300,
                    image[:200] + bytes([image[200] ^ 0x40]) + image[201:]]
        for v in variants:
            with open(os.path.join(bad, "users.db"), "wb") as f:
                f.write(v)
            for call, arg in (("pwnam", "alice@contoso.com"), ("pwuid", str(db.alice["uid"])),
                              ("grnam", "entra-admins"), ("grgid", str(ADMIN_GID))):
                st, _, lines = lookup(bad, call, arg)
                assert st == UNAVAIL, (call, lines)
        # world-writable: refused as well
        with open(os.path.join(bad, "users.db"), "wb") as f:
            f.write(image)
        os.chmod(os.path.join(bad, "users.db"), 0o666)
        st, _, lines = lookup(bad, "pwnam", "alice@contoso.com")
        assert st == UNAVAIL, lines
    finally:
        shutil.rmtree(bad)


@test
def threads_see_consistent_entries_while_writers_replace(db):
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            run([TOOL, db.dir, "add", "t%d@contoso.com" % (i % 5), "%08d-4444-4444-8444-444444444444" % (i % 5)])
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        _, _, lines = lookup(db.dir, "threads", "alice@contoso.com")
    finally:
        stop.set()
        t.join()
    assert lines == ["THREADS OK"], lines
    for i in range(5):
        run([TOOL, db.dir, "remove", "t%d@contoso.com" % i], check=False)


@test
def env_override_ignored_in_setuid_process(db):
    if os.geteuid() != 0:
        skip("needs root to make a setuid copy")
    nobody = 65534
    d = tempfile.mkdtemp(prefix="nss_entra_suid.")
    try:
        os.chmod(d, 0o755)
        so = os.path.join(d, "libnss_entra.so.2")
        exe = os.path.join(d, "nss_lookup")
        shutil.copy(SO, so)
        shutil.copy(LOOKUP, exe)
        os.chmod(so, 0o755)
        os.chmod(exe, 0o4755)
        env = dict(os.environ, ENTRA_NSS_DB_DIR=db.dir)
        base = ["setpriv", "--reuid=%d" % nobody, "--regid=%d" % nobody, "--clear-groups"]
        p = run(base + [exe, so, "pwnam", "alice@contoso.com"], env=env, check=False)
        if "nosuid" in run(["findmnt", "-no", "OPTIONS", "-T", d], check=False).stdout:
            skip("%s is mounted nosuid" % d)
        # setuid root run by nobody: AT_SECURE, the variable is ignored and
        # the compiled-in directory (absent here) is used
        assert p.stdout.startswith("STATUS %d" % NOTFOUND), (p.stdout, p.stderr)
        os.chmod(exe, 0o755)
        p = run(base + [exe, so, "pwnam", "alice@contoso.com"], env=env, check=False)
        assert p.stdout.startswith("STATUS %d" % SUCCESS), (p.stdout, p.stderr)
    finally:
        shutil.rmtree(d)


tap_run(setup, teardown)
