#!/usr/bin/python3
"""Step-up for sudo through a real sudo (root, private namespaces:
tests/e2e/rig.py).

The config binds authentication context c2 to sudo alone
(`auth_context = sudo:c2`). alice logs in over ssh (service sshd-entra: no
context asked for), then runs sudo: sudo's device-code request carries the
claims request for c2, and the module admits only an ARM access token whose
acrs holds c2. The fake Entra adds the requested acrs unless the approval
sets acrs itself, which stands for a sign-in that did not satisfy c2."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rig  # noqa: E402
from taplib import run as tap_run, skip, test  # noqa: E402

ALICE = "alice@contoso.com"   # has the admin app role
CONTEXT = "c2"
SUDO_DONE = r"__E2E_SUDO__ (\d+)\r?\n"


class Ctx:
    pass


def diag(c, t):
    return "terminal: %r\nsyslog:\n%s" % (t.seen[-2000:], c.rig.system.syslog.text(c.mark))


def devicecode_requests(c, start):
    """The devicecode requests the fake received from entry start of its log on."""
    return [e for e in c.rig.fake.requests()["log"][start:] if e["endpoint"] == "devicecode"]


def asks_for_context(entry, value):
    """True if the request's claims parameter asks for acrs value."""
    text = entry["form"].get("claims")
    if not text:
        return False
    acrs = json.loads(text).get("access_token", {}).get("acrs", {})
    return acrs.get("essential") is True and (acrs.get("value") == value or value in acrs.get("values", []))


def log_len(c):
    return len(c.rig.fake.requests()["log"])


def sudo(c, t, approve):
    """Runs `sudo id -u` in t's shell; the first device code is approved
    with approve (extra approval claims), any further one (sudo asks again
    after a failed authentication) is declined. Returns (status, output,
    number of device codes shown)."""
    t.run("sudo -k")
    mark = len(t.seen)
    t.send("sudo id -u; echo __E2E''_SUDO__ $?")
    codes = 0
    while True:
        i = t.expect([rig.ENTER_RE, SUDO_DONE], timeout=30)
        if i == 1:
            break
        code = rig.CODE_RE.search(t.seen[t.seen.rfind("Microsoft Entra sign-in"):]).group(1)
        codes += 1
        if codes == 1:
            c.rig.person.approve(code, ALICE, [rig.ADMIN_ROLE], **approve)
        else:
            c.rig.person.decline(code)
        t.press_enter()
    status = int(t.child.match.group(1))
    return status, t.seen[mark:].replace("\r\n", "\n"), codes


@test
def ssh_login_asks_for_no_context(c):
    c.mark = c.rig.system.syslog.mark()
    start = log_len(c)
    c.t = c.rig.ssh(ALICE, roles=[rig.ADMIN_ROLE])
    reqs = devicecode_requests(c, start)
    assert len(reqs) == 1, reqs
    assert not asks_for_context(reqs[0], CONTEXT), reqs[0]["form"]
    assert "acrs" not in reqs[0]["form"].get("claims", ""), reqs[0]["form"]
    status, out = c.t.run("id -Gn")
    assert status == 0 and rig.ADMIN_GROUP in out.split(), out


@test
def sudo_asks_for_c2_and_a_satisfying_sign_in_gets_root(c):
    assert c.t is not None, "no ssh session (previous test failed)"
    c.mark = c.rig.system.syslog.mark()
    start = log_len(c)
    status, text, codes = sudo(c, c.t, {})
    assert codes == 1, "sudo asked for %d device codes\n%s" % (codes, diag(c, c.t))
    reqs = devicecode_requests(c, start)
    assert len(reqs) == 1 and asks_for_context(reqs[0], CONTEXT), [e["form"] for e in reqs]
    # the token request that redeemed the code repeats the claims request
    tokens = [e for e in c.rig.fake.requests()["log"][start:]
              if e["endpoint"] == "token" and e["status"] == 200]
    assert tokens and asks_for_context(tokens[-1], CONTEXT), [e["form"] for e in tokens]
    assert status == 0 and "0" in [ln.strip() for ln in text.splitlines()], diag(c, c.t)


@test
def sudo_refused_when_the_sign_in_did_not_satisfy_c2(c):
    assert c.t is not None, "no ssh session (first test failed)"
    c.mark = c.rig.system.syslog.mark()
    start = log_len(c)
    status, text, codes = sudo(c, c.t, {"acrs": ["c1"]})
    assert codes >= 1 and asks_for_context(devicecode_requests(c, start)[0], CONTEXT), diag(c, c.t)
    assert status != 0 and "0" not in [ln.strip() for ln in text.splitlines()], diag(c, c.t)
    assert "stronger sign-in" in text, text
    if c.rig.system.syslog.sock is not None:
        log = c.rig.system.syslog.text(c.mark)
        want = 'authentication context "%s" required' % CONTEXT
        assert any(want in ln and ALICE in ln and "via sudo refused" in ln for ln in log.splitlines()), log


def setup():
    if not rig.in_namespace():
        missing = rig.missing_programs("sudo")
        if missing:
            skip("missing: " + ", ".join(missing))
        problem = rig.namespace_problem()
        if problem:
            skip(problem)
        raise RuntimeError("not reached")
    rig.signal_exit_on_term()
    c = Ctx()
    c.rig = rig.Rig(config_extra="auth_context = sudo:%s\n" % CONTEXT)
    c.mark = 0
    c.t = None
    return c


def teardown(c):
    if c is None:
        return
    if c.t is not None:
        c.t.close()
    c.rig.close()


if not rig.in_namespace() and not rig.missing_programs("sudo") and rig.namespace_problem() is None:
    rig.enter_namespace()
tap_run(setup, teardown)
