#!/usr/bin/python3
"""Microsoft's own clients judge the fake: MSAL Python, azure-identity (Debian),
@azure/msal-node and @azure/identity (npm, tests/fake/node_modules).

Each client runs as a subprocess against the fake on 127.0.0.1; any traffic
to another host is sent to a dead local proxy, so nothing leaves the machine.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from taplib import run, skip, test  # noqa: E402
from fakectl import Fake  # noqa: E402

PYTHON = "/usr/bin/python3"
NODE_MODULES = os.path.join(HERE, "node_modules")
ARM = "https://management.azure.com/.default"


def client_env(fake, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AZURE_", "MSI_", "IDENTITY_", "IMDS_", "NODE_", "REQUESTS_"))
           and k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
    dead = "http://127.0.0.1:9"  # discard port: any stray request fails fast
    env.update({"HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "https_proxy": dead,
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "REQUESTS_CA_BUNDLE": fake.ca_file, "NODE_EXTRA_CA_CERTS": fake.ca_file,
                "PYTHONDONTWRITEBYTECODE": "1"})
    env.update(extra)
    return env


def run_client(argv, env, approve=None, timeout=60, cwd=None):
    """Run a judge; if approve is given, call it (in a thread) once a flow is pending."""
    result = {}

    def approver():
        try:
            approve()
        except Exception as e:  # reported below through result
            result["approve_error"] = repr(e)

    t = None
    if approve is not None:
        t = threading.Thread(target=approver, daemon=True)
        t.start()
    p = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if t is not None:
        t.join(30)
    assert "approve_error" not in result, result["approve_error"]
    lines = [x for x in p.stdout.splitlines() if x.startswith("{")]
    assert p.returncode == 0 and lines, "judge failed rc=%d\nstdout=%s\nstderr=%s" % (
        p.returncode, p.stdout[-2000:], p.stderr[-3000:])
    return json.loads(lines[-1])


def approver(fake, claims):
    def go():
        flow = fake.wait_pending_flow()
        fake.control("approve", {"user_code": flow["user_code"], "claims": claims})
    return go


def decliner(fake):
    def go():
        flow = fake.wait_pending_flow()
        fake.control("decline", {"user_code": flow["user_code"]})
    return go


MSAL_PY = r'''
import json, sys, msal
a = json.loads(sys.argv[1])
app = msal.PublicClientApplication(a["client_id"], authority=a["authority"], instance_discovery=False)
flow = app.initiate_device_flow(scopes=[a["scope"]])
if "user_code" not in flow:
    print(json.dumps({"stage": "initiate", "flow": flow})); sys.exit(0)
res = app.acquire_token_by_device_flow(flow)
out = {"stage": "device_flow", "error": res.get("error"), "error_codes": res.get("error_codes"),
       "claims": res.get("id_token_claims"), "has_at": bool(res.get("access_token")),
       "token_type": res.get("token_type"), "expires_in": res.get("expires_in"),
       "accounts": [x["username"] for x in app.get_accounts()]}
rt = res.get("refresh_token")
if rt:
    r2 = app.acquire_token_by_refresh_token(rt, scopes=["https://ml.azure.com/.default"])
    out["refresh"] = {"error": r2.get("error"), "has_at": bool(r2.get("access_token")),
                      "new_rt": bool(r2.get("refresh_token")) and r2.get("refresh_token") != rt}
    out["silent"] = bool((app.acquire_token_silent([a["scope"]], account=app.get_accounts()[0]) or {}).get("access_token"))
print(json.dumps(out))
'''

MSAL_PY_INSTANCE = r'''
import json, sys, requests
from msal.authority import Authority
a = json.loads(sys.argv[1])
auth = Authority(a["authority"], requests.Session(), instance_discovery=a["instance"])
print(json.dumps({"token_endpoint": auth.token_endpoint, "device": auth.device_authorization_endpoint,
                  "tenant": auth.tenant}))
'''

AZID_PY = r'''
import json, sys
from azure.identity import ManagedIdentityCredential
a = json.loads(sys.argv[1])
kw = {"client_id": a["client_id"]} if a.get("client_id") else {}
cred = ManagedIdentityCredential(**kw)
tok = cred.get_token("https://management.azure.com/.default")
import base64
claims = json.loads(base64.urlsafe_b64decode(tok.token.split(".")[1] + "==="))
print(json.dumps({"expires_on": tok.expires_on, "aud": claims["aud"], "oid": claims["oid"],
                  "appid": claims["appid"]}))
'''

MSAL_NODE = r'''
const msal = require("@azure/msal-node");
const a = JSON.parse(process.env.JUDGE_ARGS);
const pca = new msal.PublicClientApplication({auth: {clientId: a.client_id, authority: a.authority,
    knownAuthorities: [a.host]}});
(async () => {
  try {
    const r = await pca.acquireTokenByDeviceCode({scopes: [a.scope],
        deviceCodeCallback: (d) => process.stderr.write("code " + d.userCode + "\n")});
    const out = {username: r.account.username, claims: r.idTokenClaims, has_at: !!r.accessToken,
                 tenant: r.tenantId, expires: r.expiresOn ? r.expiresOn.getTime() : null};
    const s = await pca.acquireTokenSilent({account: r.account, scopes: ["https://ml.azure.com/.default"],
                                           forceRefresh: true});
    out.refresh_has_at = !!s.accessToken;
    console.log(JSON.stringify(out));
  } catch (e) {
    console.log(JSON.stringify({error: e.errorCode || String(e), sub: e.subError || null,
                                message: String(e.errorMessage || e.message).split("\n")[0]}));
  }
})();
'''

AZID_NODE = r'''
const { ManagedIdentityCredential } = require("@azure/identity");
(async () => {
  const cred = new ManagedIdentityCredential();
  const t = await cred.getToken("https://management.azure.com/.default");
  const c = JSON.parse(Buffer.from(t.token.split(".")[1], "base64url").toString());
  console.log(JSON.stringify({expires: t.expiresOnTimestamp, aud: c.aud, oid: c.oid}));
})().catch((e) => { console.error(String(e && e.stack || e)); process.exit(2); });
'''


def setup():
    d = tempfile.mkdtemp(prefix="fake-clients-")
    fake = Fake.start(d)
    fake.tmp = d
    return fake


def teardown(fake):
    if fake is not None:
        fake.stop()
        shutil.rmtree(fake.tmp, ignore_errors=True)


def fresh(fake, **cfg):
    fake.control("reset")
    fake.control("configure", dict({"interval": 1}, **cfg))


def msal_args(fake, **kw):
    a = {"client_id": fake.client_id, "authority": "%s/%s" % (fake.authority, fake.tenant_id),
         "scope": ARM}
    a.update(kw)
    return json.dumps(a)


@test
def msal_python_device_flow_and_refresh(fake):
    fresh(fake)
    out = run_client([PYTHON, "-c", MSAL_PY, msal_args(fake)], client_env(fake),
                     approve=approver(fake, {"preferred_username": "alice@contoso.com", "name": "Alice",
                                             "groups": ["1b7f0d2e-0000-4000-8000-000000000001"]}))
    assert out["error"] is None, out
    assert out["has_at"] and out["token_type"] == "Bearer", out
    c = out["claims"]
    assert c["preferred_username"] == "alice@contoso.com" and c["tid"] == fake.tenant_id, c
    assert c["aud"] == fake.client_id and c["groups"] == ["1b7f0d2e-0000-4000-8000-000000000001"], c
    assert out["accounts"] == ["alice@contoso.com"], out
    assert out["refresh"] == {"error": None, "has_at": True, "new_rt": True}, out
    assert out["silent"], out
    counts = fake.requests()["counts"]
    assert counts["devicecode"] == 1 and counts["token"] >= 2, counts


@test
def msal_python_device_flow_declined(fake):
    fresh(fake)
    out = run_client([PYTHON, "-c", MSAL_PY, msal_args(fake)], client_env(fake), approve=decliner(fake))
    assert out["error"] == "authorization_declined" and not out["has_at"], out


@test
def msal_python_sees_conditional_access_block(fake):
    fresh(fake, token_error={"aadsts": 53003})
    out = run_client([PYTHON, "-c", MSAL_PY, msal_args(fake)], client_env(fake),
                     approve=approver(fake, {"preferred_username": "bob@contoso.com"}))
    assert out["error"] == "invalid_grant" and out["error_codes"] == [53003], out


@test
def msal_python_unknown_client_rejected(fake):
    fresh(fake)
    out = run_client([PYTHON, "-c", MSAL_PY, msal_args(fake, client_id="11111111-2222-4333-8444-555555555555")],
                     client_env(fake))
    assert out["stage"] == "initiate" and out["flow"]["error"] == "unauthorized_client", out
    assert out["flow"]["error_codes"] == [700016], out


@test
def msal_python_instance_discovery(fake):
    fresh(fake)
    out = run_client([PYTHON, "-c", MSAL_PY_INSTANCE, json.dumps({
        "authority": "%s/%s" % (fake.authority, fake.tenant_domain),
        "instance": "%s/common/discovery/instance" % fake.authority})], client_env(fake))
    assert out["tenant"] == fake.tenant_id, out
    assert out["device"] == "%s/%s/oauth2/v2.0/devicecode" % (fake.authority, fake.tenant_id), out
    assert fake.requests()["counts"]["instance"] == 1


def azid_python(fake, env, client_id=None):
    return run_client([PYTHON, "-c", AZID_PY, json.dumps({"client_id": client_id})], client_env(fake, **env))


@test
def azure_identity_python_imds(fake):
    fresh(fake)
    out = azid_python(fake, {"AZURE_POD_IDENTITY_AUTHORITY_HOST": fake.msi_base})
    assert out["aud"] == "https://management.azure.com" and out["expires_on"] > 0, out
    out = azid_python(fake, {"AZURE_POD_IDENTITY_AUTHORITY_HOST": fake.msi_base},
                      client_id="7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f")
    assert out["appid"] == "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f", out
    assert fake.requests()["counts"]["imds"] >= 2


@test
def azure_identity_python_azure_ml(fake):
    fresh(fake)
    out = azid_python(fake, {"MSI_ENDPOINT": fake.msi_base + "/msi/token", "MSI_SECRET": fake.msi_secret})
    import time
    assert out["expires_on"] > time.time() + 3600, out  # the date string was parsed
    assert fake.requests()["counts"]["azureml"] == 1


@test
def azure_identity_python_app_service(fake):
    fresh(fake)
    out = azid_python(fake, {"IDENTITY_ENDPOINT": fake.msi_base + "/appservice/token",
                             "IDENTITY_HEADER": fake.identity_header})
    assert out["aud"] == "https://management.azure.com", out
    assert fake.requests()["counts"]["appservice"] == 1


@test
def azure_identity_python_arc(fake):
    fresh(fake)
    out = azid_python(fake, {"IDENTITY_ENDPOINT": fake.msi_base + "/arc/metadata/identity/oauth2/token",
                             "IMDS_ENDPOINT": fake.msi_base})
    assert out["oid"] == "9d8c7b6a-5f4e-4d3c-8b2a-1e0f9a8b7c6d", out
    assert fake.requests()["counts"]["arc"] == 2  # challenge, then the token


def need_node():
    if not os.path.isdir(NODE_MODULES):
        skip("npm modules not installed (run npm ci in tests/fake)")
    if shutil.which("node") is None:
        skip("node not installed")


def node_run(fake, script, env, approve=None):
    return run_client(["node", "-e", script], client_env(fake, NODE_PATH=NODE_MODULES, **env),
                      approve=approve, cwd=HERE)


@test
def msal_node_device_flow(fake):
    need_node()
    fresh(fake)
    a = json.loads(msal_args(fake))
    a["host"] = "127.0.0.1:%d" % fake.https_port
    out = node_run(fake, MSAL_NODE, {"JUDGE_ARGS": json.dumps(a)},
                   approve=approver(fake, {"preferred_username": "carol@contoso.com", "name": "Carol"}))
    assert "error" not in out, out
    assert out["username"] == "carol@contoso.com" and out["has_at"], out
    assert out["claims"]["tid"] == fake.tenant_id and out["tenant"] == fake.tenant_id, out
    assert out["refresh_has_at"], out
    log = fake.requests()["log"]
    polls = [e for e in log if e["endpoint"] == "token" and e["form"].get("grant_type") == "device_code"]
    assert polls and polls[-1]["form"]["device_code"] == "<redacted>", polls


@test
def msal_node_device_flow_declined(fake):
    need_node()
    fresh(fake)
    a = json.loads(msal_args(fake))
    a["host"] = "127.0.0.1:%d" % fake.https_port
    out = node_run(fake, MSAL_NODE, {"JUDGE_ARGS": json.dumps(a)}, approve=decliner(fake))
    # msal-node wraps every final polling error as post_request_failed
    # carrying the server's `error` as its message.
    assert out.get("error") == "post_request_failed" and out["message"] == "authorization_declined", out


@test
def azure_identity_node_imds(fake):
    need_node()
    fresh(fake)
    out = node_run(fake, AZID_NODE, {"AZURE_POD_IDENTITY_AUTHORITY_HOST": fake.msi_base})
    assert out["aud"] == "https://management.azure.com" and out["oid"] == "9d8c7b6a-5f4e-4d3c-8b2a-1e0f9a8b7c6d", out
    paths = {e["path"] for e in fake.requests()["log"] if e["endpoint"] == "imds"}
    assert paths, paths


@test
def azure_identity_node_app_service(fake):
    need_node()
    fresh(fake)
    out = node_run(fake, AZID_NODE, {"IDENTITY_ENDPOINT": fake.msi_base + "/appservice/token",
                                     "IDENTITY_HEADER": fake.identity_header})
    assert out["aud"] == "https://management.azure.com", out
    assert fake.requests()["counts"]["appservice"] == 1


if __name__ == "__main__":
    run(setup, teardown)
