#!/usr/bin/python3
"""The token service in a session opened by the real sshd.

entra-tokend runs inside the rig's private namespaces with the rig's config;
alice logs in through sshd with the device code; in her remote shell
Microsoft's azure-identity (Debian's /usr/bin/python3) gets her tokens
through IDENTITY_ENDPOINT/IDENTITY_HEADER, a second resource through a
refresh grant at the fake, and entra-token prints the az-like JSON. After
logout the secret is dead. The SDK sees only 127.0.0.1: every proxy
variable points at a dead loopback port, NO_PROXY covers loopback, and the
session carries no AZURE_* credential variable."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rig  # noqa: E402
from taplib import run as tap_run, skip, test  # noqa: E402

ALICE = "alice@contoso.com"
ARM = "https://management.azure.com/.default"
ML = "https://ml.azure.com/.default"
ENTRA_TOKEN = os.path.join(rig.BUILDDIR, "tools", "entra-token")
TOKEND = os.path.join(rig.BUILDDIR, "tools", "entra-tokend")

# Variables that would give DefaultAzureCredential another way in.
CREDENTIAL_VARS = ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
                   "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_USERNAME", "AZURE_PASSWORD",
                   "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "MSI_ENDPOINT", "MSI_SECRET",
                   "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "AZURE_POD_IDENTITY_AUTHORITY_HOST")

LOOPBACK_ONLY = ("HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 "
                 "http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 "
                 "ALL_PROXY=http://127.0.0.1:9 all_proxy=http://127.0.0.1:9 "
                 "NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost PYTHONDONTWRITEBYTECODE=1")

PY_DAC = r"""
import json, sys
from azure.identity import DefaultAzureCredential
cred = DefaultAzureCredential(exclude_interactive_browser_credential=True)
out = {}
for scope in sys.argv[1:]:
    t = cred.get_token(scope)
    out[scope] = {"token": t.token, "expires_on": t.expires_on}
print("__RESULT__" + json.dumps(out))
"""

# A token request with a given secret, printing the HTTP status.
PY_GET = r"""
import sys, urllib.error, urllib.parse, urllib.request
url = sys.argv[1] + "?" + urllib.parse.urlencode({"resource": "https://management.azure.com",
                                                   "api-version": "2019-08-01"})
req = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": sys.stdin.readline().strip()})
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    print(opener.open(req, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
"""


class Ctx:
    pass


def context(c):
    out = []
    if c.term is not None:
        out.append("terminal: %r" % c.term.seen[-1500:])
    out.append("tokend log:\n" + c.rig.tokend.log_text()[-2000:])
    out.append("syslog:\n" + c.rig.system.syslog.text(c.mark)[-3000:])
    return "\n".join(out)


def token_requests(c):
    return [e for e in c.rig.fake.requests()["log"] if e["endpoint"] == "token"]


def get_status(c, uid, secret):
    """Status of a token request with secret from a process of uid."""
    argv = [rig.PYTHON, "-c", PY_GET, c.rig.tokend.endpoint()]
    if uid != 0:
        argv = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups", "--"] + argv
    p = subprocess.run(argv, input=secret + "\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=30, cwd="/",
                       env=rig.clean_env(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1"))
    assert p.returncode == 0, p.stderr
    return int(p.stdout.strip())


@test
def login_through_sshd_registers_the_session(c):
    c.mark = c.rig.system.syslog.mark()
    c.devicecode_before = c.rig.person.counts()["devicecode"]
    c.term = t = c.rig.ssh_terminal(ALICE)
    code = t.wait_device_prompt()
    c.rig.person.approve(code, ALICE)
    t.press_enter()
    t.start_shell()
    flow = [f for f in c.rig.fake.flows() if f["user_code"] == code][0]
    c.oid = flow["approved_claims"]["oid"]
    c.uid = c.rig.system.passwd(ALICE)["uid"]
    sessions = c.rig.tokend.sessions()
    assert len(sessions) == 1, (sessions, context(c))
    assert sessions[0]["uid"] == c.uid and sessions[0]["user"] == ALICE, sessions
    c.session_id = sessions[0]["session_id"]


@test
def session_has_the_identity_endpoint(c):
    assert c.term is not None, "no session (see the login test)"
    status, out = c.term.run("env")
    env = rig.parse_env(out)
    assert env.get("IDENTITY_ENDPOINT") == c.rig.tokend.endpoint(), (env, context(c))
    secret = env.get("IDENTITY_HEADER", "")
    assert len(secret) >= 43 and secret.isascii() and secret.strip() == secret, "IDENTITY_HEADER looks wrong"
    offered = [k for k in CREDENTIAL_VARS if k in env]
    assert not offered, "the session offers the SDK other credentials: %s" % offered
    assert secret not in c.rig.tokend.log_text() and secret not in c.rig.system.syslog.text(), \
        "the session's secret was logged"
    c.secret = secret
    c.env = env


@test
def azure_identity_gets_alices_tokens(c):
    assert hasattr(c, "env"), "no session environment"
    script = os.path.join(c.rig.work, "dac.py")
    rig.write(script, PY_DAC, 0o644)
    before = token_requests(c)
    status, out = c.term.run("%s /usr/bin/python3 %s %s %s 2>&1 | tail -n 40" % (LOOPBACK_ONLY, script, ARM, ML),
                             timeout=120)
    lines = [ln for ln in out.splitlines() if ln.startswith("__RESULT__")]
    assert lines, "azure-identity failed in the session:\n%s\n%s" % (out[-3000:], context(c))
    res = json.loads(lines[-1][len("__RESULT__"):])
    _, arm = rig.decode_jwt_unverified(res[ARM]["token"])
    _, ml = rig.decode_jwt_unverified(res[ML]["token"])
    for claims, aud in ((arm, "https://management.azure.com/"), (ml, "https://ml.azure.com")):
        assert claims["upn"] == ALICE and claims["oid"] == c.oid, claims
        assert claims["aud"] == aud and claims["tid"] == c.rig.fake.tenant_id, claims
    assert res[ARM]["expires_on"] == arm["exp"] and res[ML]["expires_on"] == ml["exp"], res
    # The ml.azure.com token came from a refresh grant at the fake (the
    # session's own refresh token, held by the daemon); no new device flow.
    new = token_requests(c)[len(before):]
    grants = [e for e in new if e["form"].get("grant_type") == "refresh_token"
              and "ml.azure.com" in e["form"].get("scope", "") and e["status"] == 200]
    assert len(grants) == 1, (new, context(c))
    print("# token endpoint requests during the SDK run: %d (%s)" % (
        len(new), ", ".join("%s %s" % (e["form"].get("grant_type"), e["form"].get("scope", "")) for e in new)))
    assert all(e["form"].get("grant_type") == "refresh_token" for e in new), new
    assert c.rig.person.counts()["devicecode"] == c.devicecode_before + 1


@test
def entra_token_json_is_az_like(c):
    assert hasattr(c, "env"), "no session environment"
    status, out = c.term.run("%s --json" % ENTRA_TOKEN)
    assert status == 0, out
    o = json.loads(out)
    assert {"accessToken", "expiresOn", "tokenType", "tenant"} <= set(o), o.keys()
    assert o["tokenType"] == "Bearer" and o["tenant"] == c.rig.fake.tenant_id, o
    time.strptime(o["expiresOn"], "%Y-%m-%d %H:%M:%S.%f")
    _, claims = rig.decode_jwt_unverified(o["accessToken"])
    assert claims["upn"] == ALICE and claims["aud"] == "https://management.azure.com/", claims
    status, out = c.term.run("%s --resource https://ml.azure.com" % ENTRA_TOKEN)
    assert status == 0, out
    _, claims = rig.decode_jwt_unverified(out)
    assert claims["aud"] == "https://ml.azure.com" and claims["oid"] == c.oid, claims


@test
def secret_works_only_for_alices_uid_while_logged_in(c):
    assert hasattr(c, "secret"), "no session secret"
    assert get_status(c, c.uid, c.secret) == 200, context(c)
    assert get_status(c, 0, c.secret) == 401
    assert get_status(c, c.uid, "0" * len(c.secret)) == 401


@test
def after_logout_the_secret_is_dead(c):
    assert hasattr(c, "secret"), "no session secret"
    status = c.term.logout()
    c.term = None
    assert status == 0, status
    gone = rig.wait_until(lambda: not c.rig.tokend.sessions(), timeout=10)
    assert gone, "session still registered after logout: %s" % c.rig.tokend.sessions()
    assert get_status(c, 0, c.secret) == 401
    assert get_status(c, c.uid, c.secret) == 401, context(c)


def setup():
    if not rig.in_namespace():
        missing = rig.missing_programs("sshd", "su")
        for prog in (TOKEND, ENTRA_TOKEN):
            if not os.access(prog, os.X_OK):
                missing.append(prog)
        if subprocess.run([rig.PYTHON, "-c", "import azure.identity"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            missing.append("python3-azure (azure.identity for %s)" % rig.PYTHON)
        if missing:
            skip("missing: " + ", ".join(missing))
        problem = rig.namespace_problem()
        if problem:
            skip(problem)
        raise RuntimeError("not reached")
    rig.signal_exit_on_term()
    c = Ctx()
    c.term = None
    c.mark = 0
    c.rig = rig.Rig(with_tokend=True)
    return c


def teardown(c):
    if c is None:
        return
    if c.term is not None:
        c.term.close()
    c.rig.close()


def can_enter():
    if rig.in_namespace() or rig.missing_programs("sshd", "su") or rig.namespace_problem() is not None:
        return False
    if not (os.access(TOKEND, os.X_OK) and os.access(ENTRA_TOKEN, os.X_OK)):
        return False
    return subprocess.run([rig.PYTHON, "-c", "import azure.identity"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


if can_enter():
    rig.enter_namespace()
tap_run(setup, teardown)
