#!/usr/bin/python3
"""Microsoft's own SDKs in a pam_entra session served by entra-tokend:
Debian's azure-identity (and azure-ai-ml where it imports) and npm's
@azure/identity, with DefaultAzureCredential, for a person's session and a
service account's. The SDKs see only 127.0.0.1: proxies point at a dead
port, NO_PROXY covers loopback, and no AZURE_* variable offers them another
credential."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.environ.get("ENTRA_SRCDIR", "."), "tests"))
from taplib import run, skip, test  # noqa: E402
from tokendlib import PYTHON, SRCDIR, UID_A, UID_B, Rig, claims_of, is_root  # noqa: E402

NODE_MODULES = os.path.join(SRCDIR, "tests", "fake", "node_modules")

PY_DAC = r"""
import json, sys
from azure.identity import DefaultAzureCredential
out = {}
cred = DefaultAzureCredential(exclude_interactive_browser_credential=True)
for scope in sys.argv[1:]:
    t = cred.get_token(scope)
    out[scope] = {"token": t.token, "expires_on": t.expires_on}
print(json.dumps(out))
"""

PY_MLCLIENT = r"""
import json, os
from azure.identity import DefaultAzureCredential
from azure.ai.ml import MLClient
ml = MLClient.from_config(credential=DefaultAzureCredential(), path=os.environ["ENTRA_SESSION_DIR"])
print(json.dumps({"subscription": ml.subscription_id, "resource_group": ml.resource_group_name,
                  "workspace": ml.workspace_name}))
"""

NODE_DAC = r"""
const { DefaultAzureCredential } = require("@azure/identity");
(async () => {
  const cred = new DefaultAzureCredential();
  const out = {};
  for (const scope of process.argv.slice(1)) {
    const t = await cred.getToken(scope);
    out[scope] = { token: t.token, expires_on: t.expiresOnTimestamp };
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.log(JSON.stringify({ error: String(e && e.message || e) })); });
"""

ARM = "https://management.azure.com/.default"
STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin")
ML = "https://ml.azure.com/.default"


def setup():
    if not is_root():
        skip("needs root: the session runs as another uid")
    rig = Rig()
    rig.start("--grace", "3600")
    rig.alice = rig.make_session(UID_A)
    rig.svc = rig.make_session(UID_B, user="svc-train", kind="managed-identity")
    return rig


def teardown(rig):
    if rig is not None:
        rig.cleanup()


def py(rig, sess, code, *args, env=None):
    r = rig.as_uid(sess["uid"], [PYTHON, "-c", code] + list(args), env or rig.session_env(sess), timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def node(rig, sess, *args):
    if not os.path.isdir(NODE_MODULES):
        skip("npm modules not installed (run npm ci in tests/fake)")
    if shutil.which("node") is None:
        skip("node not installed")
    env = rig.session_env(sess, NODE_PATH=NODE_MODULES, PATH="/usr/local/bin:/usr/bin:/bin")
    r = rig.as_uid(sess["uid"], [shutil.which("node"), "-e", NODE_DAC] + list(args), env, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert "error" not in out, out
    return out


@test
def python_default_credential_person(rig):
    before = rig.fake.requests()["counts"]["token"]
    out = py(rig, rig.alice, PY_DAC, ARM, ML)
    arm, ml = claims_of(out[ARM]["token"]), claims_of(out[ML]["token"])
    assert arm["aud"] == "https://management.azure.com/" and arm["upn"] == "alice@contoso.com", arm
    assert ml["aud"] == "https://ml.azure.com" and ml["oid"] == arm["oid"], ml
    assert out[ARM]["expires_on"] == arm["exp"], out[ARM]
    # Two resources, two refresh grants at the fake, no device flow.
    counts = rig.fake.requests()["counts"]
    assert counts["token"] == before + 2 and counts["devicecode"] == 1, counts
    log = [e for e in rig.fake.requests()["log"] if e["endpoint"] == "token"][-2:]
    assert {e["form"]["grant_type"] for e in log} == {"refresh_token"}, log


@test
def python_mlclient_from_config(rig):
    env = rig.session_env(rig.alice)
    probe = rig.as_uid(UID_A, [PYTHON, "-c", "import azure.ai.ml"], env)
    if probe.returncode != 0 and b"pydash" in probe.stderr:
        # Debian packages azure-ai-ml without pydash: use the stand-in.
        env = rig.session_env(rig.alice, PYTHONPATH=STANDIN)
        probe = rig.as_uid(UID_A, [PYTHON, "-c", "import azure.ai.ml"], env)
    if probe.returncode != 0:
        last = probe.stderr.decode().strip().splitlines()[-1:]
        skip("azure.ai.ml does not import with Debian's python3 (%s)" % (last[0] if last else "?"))
    out = py(rig, rig.alice, PY_MLCLIENT, env=env)
    assert out == {"subscription": "00000000-0000-0000-0000-000000000000",
                   "resource_group": "rg-fake", "workspace": "ws-fake"}, out


@test
def python_default_credential_service_account(rig):
    out = py(rig, rig.svc, PY_DAC, ARM)
    c = claims_of(out[ARM]["token"])
    assert c["oid"] == "9d8c7b6a-5f4e-4d3c-8b2a-1e0f9a8b7c6d" and c["idtyp"] == "app", c


@test
def python_stolen_header_gets_nothing(rig):
    env = rig.session_env(rig.alice)
    r = rig.as_uid(UID_B, [PYTHON, "-c", PY_DAC, ARM], env, timeout=120)
    assert r.returncode != 0 and b"Log in again" in r.stderr, r.stderr.decode()[-2000:]


@test
def node_default_credential_person(rig):
    before = rig.fake.requests()["counts"]["token"]
    out = node(rig, rig.alice, ARM, "https://vault.azure.net/.default")
    arm = claims_of(out[ARM]["token"])
    kv = claims_of(out["https://vault.azure.net/.default"]["token"])
    assert arm["upn"] == "alice@contoso.com" and kv["aud"] == "https://vault.azure.net", (arm, kv)
    # ARM is served from the daemon's cache; the vault token is one grant.
    assert rig.fake.requests()["counts"]["token"] == before + 1


@test
def node_default_credential_service_account(rig):
    out = node(rig, rig.svc, ARM)
    c = claims_of(out[ARM]["token"])
    assert c["oid"] == "9d8c7b6a-5f4e-4d3c-8b2a-1e0f9a8b7c6d", c


@test
def after_logout_the_secret_is_dead(rig):
    rig.call({"op": "unregister", "session_id": rig.alice["id"]})
    r = rig.as_uid(UID_A, [PYTHON, "-c", PY_DAC, ARM], rig.session_env(rig.alice), timeout=120)
    assert r.returncode != 0 and (b"401" in r.stderr or b"Log in again" in r.stderr), r.stderr.decode()[-2000:]


if __name__ == "__main__":
    run(setup, teardown)
