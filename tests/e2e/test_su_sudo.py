#!/usr/bin/python3
"""Real su and sudo with pam_entra (root, private namespaces: tests/e2e/rig.py).

su:   an unprivileged local user runs `su - alice@contoso.com`; the device
      code appears on su's terminal; approved → a shell as alice.
sudo: Entra users logged in over ssh run sudo; sudo's PAM service asks
      pam_entra for a second device code; sudoers grants
      `%entra-admins ALL=(ALL) ALL`, and entra-admins holds the users whose
      last login carried the admin app role (config admin_roles)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rig  # noqa: E402
from taplib import run as tap_run, skip, test  # noqa: E402

ALICE = "alice@contoso.com"   # has the admin app role
BOB = "bob@contoso.com"       # does not


class Ctx:
    pass


def diag(c, t):
    return "terminal: %r\nsyslog:\n%s" % (t.seen[-2000:], c.rig.system.syslog.text(c.mark))


@test
def su_from_a_local_user_to_an_entra_user(c):
    c.mark = c.rig.system.syslog.mark()
    argv = ["setpriv", "--reuid=" + rig.LOCAL_USER, "--regid=" + rig.LOCAL_USER, "--init-groups",
            "su", "-", ALICE]
    env = rig.clean_env(HOME="/home/" + rig.LOCAL_USER, USER=rig.LOCAL_USER, LOGNAME=rig.LOCAL_USER)
    t = c.track(rig.Terminal(argv, env=env))
    code = t.wait_device_prompt()
    assert "Microsoft Entra sign-in for %s" % ALICE in t.prompt_text, t.prompt_text
    c.rig.person.approve(code, ALICE, roles=[rig.ADMIN_ROLE])
    t.press_enter()
    t.start_shell()
    pw = c.rig.system.passwd(ALICE)
    status, out = t.run("id -u; whoami; echo \"$ENTRA_UPN\"")
    lines = out.splitlines()
    assert status == 0 and lines[0] == str(pw["uid"]), diag(c, t)
    assert lines[1] == ALICE, out
    assert lines[2] == ALICE, "su session without ENTRA_UPN\n" + diag(c, t)
    status, out = t.run("stat -c '%a %u' \"$ENTRA_TOKEN_FILE\" \"$ENTRA_SESSION_DIR\"")
    assert out.splitlines() == ["600 %d" % pw["uid"], "700 %d" % pw["uid"]], out
    status, token = t.run("cat \"$ENTRA_TOKEN_FILE\"")
    header, claims = rig.decode_jwt_unverified(token)
    assert header["alg"] == "RS256" and claims["upn"] == ALICE, (header, claims)
    sdir = t.run("echo \"$ENTRA_SESSION_DIR\"")[1]
    status = t.logout()
    assert status == 0, (status, diag(c, t))
    assert rig.wait_until(lambda: not os.path.exists(sdir), timeout=10), sdir


@test
def su_wrong_person_refused(c):
    c.mark = c.rig.system.syslog.mark()
    argv = ["setpriv", "--reuid=" + rig.LOCAL_USER, "--regid=" + rig.LOCAL_USER, "--init-groups",
            "su", "-", ALICE, "-c", "echo __E2E''_SHELL__"]
    env = rig.clean_env(HOME="/home/" + rig.LOCAL_USER)
    t = c.track(rig.Terminal(argv, env=env))
    code = t.wait_device_prompt()
    c.rig.person.approve(code, BOB)
    t.press_enter()
    status = t.finish()
    assert status != 0 and "__E2E_SHELL__" not in t.seen, diag(c, t)
    assert "Authentication failure" in t.seen or "failure" in t.seen.lower(), t.seen


def sudo_attempt(c, user, roles, approve_roles, cmd):
    """ssh in as user (approving with roles), run `sudo cmd`, approve the
    second device code with approve_roles; returns (terminal, output)."""
    t = c.track(c.rig.ssh(user, roles=roles))
    status, out = t.run("sudo -k")
    mark = len(t.seen)
    t.send("sudo %s; echo __E2E''_SUDO__ $?" % cmd)
    i = t.expect([rig.ENTER_RE, r"__E2E_SUDO__ (\d+)\r?\n"], timeout=30)
    prompted = i == 0
    code = None
    if prompted:
        code = rig.CODE_RE.search(t.seen[t.seen.rfind("Microsoft Entra sign-in"):]).group(1)
        c.rig.person.approve(code, user, approve_roles)
        t.press_enter()
        t.expect([r"__E2E_SUDO__ (\d+)\r?\n"], timeout=30)
    sudo_status = int(t.child.match.group(1))
    text = t.seen[mark:].replace("\r\n", "\n")
    return t, prompted, code, sudo_status, text


@test
def admin_sudo_with_a_second_device_code(c):
    c.mark = c.rig.system.syslog.mark()
    before = c.rig.person.counts()["devicecode"]
    t, prompted, code, status, text = sudo_attempt(c, ALICE, [rig.ADMIN_ROLE], [rig.ADMIN_ROLE], "id -u")
    assert prompted, "sudo did not ask for a device code:\n" + diag(c, t)
    assert c.rig.person.counts()["devicecode"] == before + 2   # ssh login + sudo
    assert "Microsoft Entra sign-in for %s" % ALICE in text, text
    assert status == 0 and "0" in [ln.strip() for ln in text.splitlines()], diag(c, t)
    # group membership as sudoers sees it
    gstatus, groups = t.run("id -Gn")
    assert rig.ADMIN_GROUP in groups.split(), groups
    lstatus, listing = t.run("sudo -n -l 2>&1")
    t.logout()
    assert "(ALL) ALL" in listing, listing


@test
def non_admin_refused_by_sudoers(c):
    c.mark = c.rig.system.syslog.mark()
    t, prompted, code, status, text = sudo_attempt(c, BOB, None, None, "id -u")
    assert prompted, "sudo did not ask bob for a device code:\n" + diag(c, t)
    assert status != 0 and "0" not in [ln.strip() for ln in text.splitlines()], diag(c, t)
    assert "not in the sudoers file" in text or "not allowed" in text, text
    gstatus, groups = t.run("id -Gn")
    assert rig.ADMIN_GROUP not in groups.split(), groups
    t.logout()


@test
def admin_role_removed_means_no_sudo_at_next_login(c):
    # alice logs in again without the app role: her record loses admin,
    # entra-admins loses her, and sudoers refuses.
    c.mark = c.rig.system.syslog.mark()
    t, prompted, code, status, text = sudo_attempt(c, ALICE, None, None, "id -u")
    assert prompted, "sudo did not ask for a device code:\n" + diag(c, t)
    assert status != 0 and "0" not in [ln.strip() for ln in text.splitlines()], diag(c, t)
    assert "not in the sudoers file" in text or "not allowed" in text, text
    assert ALICE not in (c.rig.system.getent("group", rig.ADMIN_GROUP) or ""), \
        c.rig.system.getent("group", rig.ADMIN_GROUP)
    t.logout()


def setup():
    if not rig.in_namespace():
        missing = rig.missing_programs("su", "sudo")
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
    c.terms = []

    def track(t):
        c.terms.append(t)
        return t
    c.track = track
    return c


def teardown(c):
    if c is None:
        return
    for t in c.terms:
        t.close()
    c.rig.close()


if not rig.in_namespace() and not rig.missing_programs("su", "sudo") and rig.namespace_problem() is None:
    rig.enter_namespace()
tap_run(setup, teardown)
