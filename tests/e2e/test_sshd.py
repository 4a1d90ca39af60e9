#!/usr/bin/python3
"""A real OpenSSH sshd with pam_entra, driven by a scripted person.

Runs as root inside private mount + PID namespaces (tests/e2e/rig.py): the
machine's /etc, /lib, /home, /var and /run are never written. The person
reads the device code from the ssh prompt, approves it at the fake Entra,
presses Enter and uses the shell."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rig  # noqa: E402
from taplib import run as tap_run, skip, test  # noqa: E402

ALICE = "alice@contoso.com"
BOB = "bob@contoso.com"


class Ctx:
    pass


def fail_context(c, t=None):
    """What a failing assertion should show: the terminal and the logs."""
    out = []
    if t is not None:
        out.append("terminal: %r" % t.seen[-1500:])
    out.append("syslog:\n" + c.rig.system.syslog.text(c.mark))
    return "\n".join(out)


@test
def first_login_name_resolves_before_login(c):
    pw = c.rig.system.passwd(ALICE)
    assert pw is not None, "getent passwd %s found nothing before the first login" % ALICE
    assert rig.UID_MIN <= pw["uid"] <= rig.UID_MAX, pw
    assert pw["home"] == "/home/" + ALICE and pw["shell"] == "/bin/bash", pw
    assert not os.path.exists(pw["home"]), "home exists before the first login"
    c.pw = pw


@test
def device_code_login_gives_a_shell_with_the_assigned_uid(c):
    c.mark = c.rig.system.syslog.mark()
    before = c.rig.person.counts()["devicecode"]
    start = time.monotonic()
    c.term = t = c.rig.ssh_terminal(ALICE)
    code = t.wait_device_prompt()
    assert "https://microsoft.com/devicelogin" in t.prompt_text, t.prompt_text
    assert "Microsoft Entra sign-in for %s" % ALICE in t.prompt_text, t.prompt_text
    c.rig.person.approve(code, ALICE, roles=[rig.ADMIN_ROLE])
    t.press_enter()
    t.start_shell()
    c.login_seconds = time.monotonic() - start
    assert c.rig.person.counts()["devicecode"] == before + 1
    flows = [f for f in c.rig.fake.flows() if f["user_code"] == code]
    assert flows and flows[0]["state"] == "redeemed", (flows, open(os.path.join(c.rig.work, "fake", "fake.log")).read()[-2000:], fail_context(c, t))
    status, out = t.run("id -u")
    assert status == 0 and out == str(c.pw["uid"]), (out, c.pw)
    status, out = t.run("id -g")
    assert out == str(c.pw["gid"]), out


@test
def session_environment(c):
    status, out = c.term.run("env")
    env = rig.parse_env(out)
    missing = [k for k in ("ENTRA_SESSION_DIR", "ENTRA_TOKEN_FILE", "AZURE_TENANT_ID", "ENTRA_UPN",
                           "ENTRA_OBJECT_ID") if k not in env]
    assert not missing, "missing %s in the session's environment:\n%s\n%s" % (missing, out, fail_context(c))
    assert env["AZURE_TENANT_ID"] == c.rig.fake.tenant_id, env
    assert env["ENTRA_UPN"] == ALICE, env
    flow = [f for f in c.rig.fake.flows() if f["user_code"] == c.term.code][0]
    assert env["ENTRA_OBJECT_ID"] == flow["approved_claims"]["oid"], (env, flow)
    assert env["ENTRA_SESSION_DIR"].startswith("/run/pam_entra/%d/" % c.pw["uid"]), env
    assert env["ENTRA_TOKEN_FILE"].startswith(env["ENTRA_SESSION_DIR"].rstrip("/") + "/"), env
    assert env["USER"] == ALICE and env["HOME"] == c.pw["home"], env
    c.env = env


@test
def token_file_and_session_dir_modes(c):
    assert hasattr(c, "env"), "no session environment (see session_environment)"
    env = c.env
    status, out = c.term.run("stat -c '%%a %%u' \"%s\"" % env["ENTRA_TOKEN_FILE"])
    assert (status, out) == (0, "600 %d" % c.pw["uid"]), out
    status, out = c.term.run("stat -c '%%a %%u' \"%s\"" % env["ENTRA_SESSION_DIR"])
    assert (status, out) == (0, "700 %d" % c.pw["uid"]), out
    # The person can read their own token: a workspace (ARM) token for them.
    status, out = c.term.run("cat \"%s\"" % env["ENTRA_TOKEN_FILE"])
    assert status == 0, out
    _, claims = rig.decode_jwt_unverified(out)
    assert claims["upn"] == ALICE and claims["oid"] == env["ENTRA_OBJECT_ID"], claims
    assert claims["aud"] == "https://management.azure.com/", claims
    # No one else can: the directory is the user's own, 0700 under a root path.
    st = os.stat(env["ENTRA_SESSION_DIR"])
    assert st.st_uid == c.pw["uid"] and (st.st_mode & 0o077) == 0


@test
def home_directory_created_at_first_login(c):
    status, out = c.term.run("stat -c '%a %u %g %n' ~; ls -ld ~")
    lines = out.splitlines()
    assert status == 0 and lines[0] == "700 %d %d %s" % (c.pw["uid"], c.pw["gid"], c.pw["home"]), out
    assert lines[1].startswith("drwx------ "), out
    status, out = c.term.run("pwd")
    assert out == c.pw["home"], out


@test
def logout_removes_the_session_directory(c):
    assert hasattr(c, "env"), "no session environment (see session_environment)"
    sdir = c.env["ENTRA_SESSION_DIR"]
    assert os.path.isdir(sdir)
    status = c.term.logout()
    assert status == 0, status
    gone = rig.wait_until(lambda: not os.path.exists(sdir), timeout=10)
    assert gone, "%s still there after logout\n%s" % (sdir, fail_context(c))
    assert c.rig.system.session_dirs() == [], c.rig.system.session_dirs()


def refused_login(c, user, act):
    """Starts a login, lets act(code) play the person, and returns the
    terminal after ssh ended."""
    t = c.rig.ssh_terminal(user)
    try:
        code = t.wait_device_prompt()
        act(code)
        t.press_enter()
        status = t.finish(timeout=30)
    finally:
        t.close()
    return t, code, status


@test
def wrong_person_approves_refused(c):
    mark = c.rig.system.syslog.mark()
    t, code, status = refused_login(c, ALICE, lambda code: c.rig.person.approve(code, BOB))
    assert status != 0, t.seen
    assert rig.BEGIN not in t.seen and "__E2E_READY__" not in t.seen
    assert "Permission denied" in t.seen, t.seen
    assert c.rig.system.session_dirs() == []
    log = c.rig.system.syslog.text(mark)
    if c.rig.system.syslog.sock is not None:
        assert "refused" in log and BOB in log, log


@test
def decline_refused(c):
    mark = c.rig.system.syslog.mark()
    t, code, status = refused_login(c, ALICE, lambda code: c.rig.person.decline(code))
    assert status != 0 and "Permission denied" in t.seen, t.seen
    flows = [f for f in c.rig.fake.flows() if f["user_code"] == code]
    # the fake marks a declined flow "failed" once the decline was polled
    assert flows[0]["state"] in ("declined", "failed") and flows[0]["approved_claims"] is None, flows
    if c.rig.system.syslog.sock is not None:
        assert "declin" in c.rig.system.syslog.text(mark), c.rig.system.syslog.text(mark)


@test
def unmapped_names_refused_without_a_device_code(c):
    # sshd logs "Invalid user" (NSS does not know the name) and still runs
    # PAM; pam_entra answers user_unknown at once, so the stack falls
    # through to pam_unix's password prompt: never a device code.
    for name in ("eve@evil.example", "nobody2"):
        assert c.rig.system.passwd(name) is None, name
        before = c.rig.person.counts()["devicecode"]
        t = c.rig.ssh_terminal(name)
        try:
            i = t.expect([rig.ENTER_RE, r"[Pp]assword: ", r"Permission denied", t.pexpect.EOF], timeout=30)
            assert i != 0, "a device code was offered to %s: %r" % (name, t.seen)
            if i == 1:
                t.send("not-a-password")
            status = t.finish(timeout=30)
        finally:
            t.close()
        assert status != 0 and "Permission denied" in t.seen, t.seen
        assert "__E2E_READY__" not in t.seen
        assert c.rig.person.counts()["devicecode"] == before, "a device code was requested for " + name
        assert rig.wait_until(lambda: "Invalid user %s" % name in c.rig.sshd.log_text(), timeout=5), \
            c.rig.sshd.log_text()[-1500:]


@test
def timing(c):
    # ~0.5 s on the reference machine; a budget, not a benchmark.
    assert c.login_seconds < 10, c.login_seconds
    print("# login from ssh start to shell: %.2f s" % c.login_seconds)


def setup():
    if not rig.in_namespace():
        missing = rig.missing_programs("sshd")
        if missing:
            skip("missing: " + ", ".join(missing))
        problem = rig.namespace_problem()
        if problem:
            skip(problem)
        raise RuntimeError("not reached")
    rig.signal_exit_on_term()
    c = Ctx()
    c.rig = rig.Rig()
    c.mark = 0
    c.term = None
    return c


def teardown(c):
    if c is None:
        return
    if c.term is not None:
        c.term.close()
    c.rig.close()


if not rig.in_namespace() and not rig.missing_programs("sshd") and rig.namespace_problem() is None:
    rig.enter_namespace()
tap_run(setup, teardown)
