#!/usr/bin/python3
"""Fast self-test of the fake's own wire format (PROTOCOL.md): error bodies,
token responses, managed-identity responses, scenarios and the control API."""
import base64
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from taplib import run, test  # noqa: E402
from fakectl import Fake  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402

ARM_SCOPES = "https://management.azure.com/.default openid profile offline_access"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$")
ERROR_FIELDS = {"error": str, "error_description": str, "error_codes": list, "timestamp": str,
                "trace_id": str, "correlation_id": str, "error_uri": str}


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(tok):
    h, c, s = tok.split(".")
    return json.loads(b64d(h)), json.loads(b64d(c)), b64d(s)


def verify(fake, tok, tenant=None):
    """True iff tok is RS256 signed by a JWKS key of its kid."""
    head, _, sig = jwt_parts(tok)
    st, _, jwks = fake.json("GET", "/%s/discovery/v2.0/keys" % (tenant or fake.tenant_id))
    key = next((k for k in jwks["keys"] if k["kid"] == head.get("kid")), None)
    if head.get("alg") != "RS256" or key is None:
        return False
    n = int.from_bytes(b64d(key["n"]), "big")
    e = int.from_bytes(b64d(key["e"]), "big")
    pub = rsa.RSAPublicNumbers(e, n).public_key()
    try:
        pub.verify(sig, tok.rsplit(".", 1)[0].encode(), padding.PKCS1v15(), hashes.SHA256())
        return True
    except InvalidSignature:
        return False


def check_error(body, error, code, suberror=None):
    assert set(body) - {"suberror", "claims"} == set(ERROR_FIELDS), body
    for k, t in ERROR_FIELDS.items():
        assert isinstance(body[k], t), (k, body)
    assert body["error"] == error, body
    if code is None:
        assert body["error_codes"] == [], body
    else:
        assert body["error_codes"] == [code] and all(isinstance(c, int) for c in body["error_codes"]), body
        assert body["error_description"].startswith("AADSTS%d: " % code), body
        assert body["error_uri"].endswith("/error?code=%d" % code), body
    lines = body["error_description"].split("\r\n")
    assert len(lines) == 4, lines
    assert lines[1] == "Trace ID: " + body["trace_id"] and lines[2] == "Correlation ID: " + body["correlation_id"]
    assert lines[3] == "Timestamp: " + body["timestamp"] and TS.match(body["timestamp"]), lines
    assert GUID.match(body["trace_id"]) and GUID.match(body["correlation_id"]), body
    assert body.get("suberror") == suberror, body
    if "claims" in body:
        assert isinstance(body["claims"], str) and isinstance(json.loads(body["claims"]), dict), body


def devicecode(fake, scope=ARM_SCOPES, client_id=None, **form):
    f = {"client_id": client_id or fake.client_id, "scope": scope}
    f.update(form)
    return fake.json("POST", "/%s/oauth2/v2.0/devicecode" % fake.tenant_id, form=f)


def poll(fake, dc, client_id=None, tenant=None, **form):
    f = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": client_id or fake.client_id,
         "device_code": dc}
    f.update(form)
    return fake.json("POST", "/%s/oauth2/v2.0/token" % (tenant or fake.tenant_id), form=f)


def login(fake, claims=None, scope=ARM_SCOPES, **form):
    st, _, dc = devicecode(fake, scope)
    assert st == 200, dc
    fake.control("approve", {"user_code": dc["user_code"], "claims": claims or {}})
    st, _, tok = poll(fake, dc["device_code"], **form)
    assert st == 200, tok
    return tok


def imds(fake, path="/metadata/identity/oauth2/token", headers=None, **q):
    query = {"api-version": "2018-02-01", "resource": "https://management.azure.com/"}
    query.update(q)
    url = "%s%s?%s" % (fake.msi_base, path, "&".join("%s=%s" % kv for kv in query.items() if kv[1] is not None))
    return fake.json("GET", url, headers={"Metadata": "true"} if headers is None else headers)


def setup():
    d = tempfile.mkdtemp(prefix="fake-proto-")
    t = time.monotonic()
    fake = Fake.start(d)
    fake.startup = time.monotonic() - t
    fake.tmp = d
    return fake


def teardown(fake):
    if fake is not None:
        fake.stop()
        shutil.rmtree(fake.tmp, ignore_errors=True)


def fresh(fake, **cfg):
    fake.control("reset")
    if cfg:
        fake.control("configure", cfg)


@test
def starts_fast_and_writes_fake_json(fake):
    assert fake.startup < 5.0, fake.startup  # ~0.4-0.7 s; RSA key generation time varies under load
    info = json.load(open(os.path.join(fake.tmp, "fake.json")))
    for k, t in {"https_port": int, "http_port": int, "pid": int, "tenant_id": str, "tenant_domain": str,
                 "ca_file": str, "authority": str, "msi_secret": str, "identity_header": str}.items():
        assert isinstance(info[k], t), (k, info)
    assert info["authority"] == "https://127.0.0.1:%d" % info["https_port"]
    assert info["tenant_id"] == "8e9f1c2a-3b4d-4e5f-9a0b-1c2d3e4f5a6b" and info["tenant_domain"] == "contoso.com"
    assert os.stat(os.path.join(fake.tmp, "signing.key")).st_mode & 0o077 == 0
    ca = x509.load_pem_x509_certificate(open(info["ca_file"], "rb").read())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@test
def discovery_document(fake):
    fresh(fake)
    for tenant in (fake.tenant_id, "CONTOSO.com", "organizations", "common"):
        st, h, doc = fake.json("GET", "/%s/v2.0/.well-known/openid-configuration" % tenant)
        assert st == 200 and h["cache-control"] == "max-age=86400, private", (st, h)
        multi = tenant in ("organizations", "common")
        path = tenant if multi else fake.tenant_id
        base = "%s/%s" % (fake.authority, path)
        assert doc["token_endpoint"] == base + "/oauth2/v2.0/token", doc
        assert doc["device_authorization_endpoint"] == base + "/oauth2/v2.0/devicecode"
        assert doc["jwks_uri"] == base + "/discovery/v2.0/keys"
        assert doc["issuer"] == "%s/%s/v2.0" % (fake.authority, "{tenantid}" if multi else fake.tenant_id), doc
        assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
        assert doc["subject_types_supported"] == ["pairwise"]
    fake.control("configure", {"issuer_template": True})
    _, _, doc = fake.json("GET", "/%s/v2.0/.well-known/openid-configuration" % fake.tenant_id)
    assert doc["issuer"] == fake.authority + "/{tenantid}/v2.0", doc


@test
def unknown_tenant_is_invalid_tenant(fake):
    fresh(fake)
    st, _, body = fake.json("GET", "/fabrikam.com/v2.0/.well-known/openid-configuration")
    assert st == 400
    check_error(body, "invalid_tenant", 90002)
    assert "fabrikam.com" in body["error_description"]


@test
def jwks_format(fake):
    fresh(fake)
    st, h, jwks = fake.json("GET", "/%s/discovery/v2.0/keys" % fake.tenant_id)
    assert st == 200 and len(jwks["keys"]) == 1
    k = jwks["keys"][0]
    assert set(k) == {"kty", "use", "kid", "x5t", "n", "e", "x5c", "issuer"}, k
    assert k["kty"] == "RSA" and k["use"] == "sig" and k["e"] == "AQAB" and k["kid"] == k["x5t"]
    assert k["issuer"] == "%s/%s/v2.0" % (fake.authority, fake.tenant_id)
    der = base64.b64decode(k["x5c"][0])
    assert base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode() == k["x5t"]
    cert = x509.load_der_x509_certificate(der)
    assert cert.public_key().public_numbers().n == int.from_bytes(b64d(k["n"]), "big")
    assert len(b64d(k["n"])) == 256
    _, _, common = fake.json("GET", "/common/discovery/v2.0/keys")
    assert common["keys"][0]["issuer"] == fake.authority + "/{tenantid}/v2.0"


@test
def devicecode_response(fake):
    fresh(fake)
    st, h, dc = devicecode(fake, claims='{"access_token":{"acrs":{"essential":true,"value":"c1"}}}',
                           mkt="de-DE", client_info="1")
    assert st == 200, dc
    assert set(dc) == {"user_code", "device_code", "verification_uri", "expires_in", "interval", "message"}, dc
    assert re.fullmatch(r"[A-Z0-9]{9}", dc["user_code"]), dc
    assert len(dc["device_code"]) > 100 and dc["verification_uri"] == "https://microsoft.com/devicelogin"
    assert dc["expires_in"] == 900 and dc["interval"] == 5
    assert dc["message"] == ("To sign in, use a web browser to open the page https://microsoft.com/devicelogin "
                             "and enter the code %s to authenticate." % dc["user_code"])
    flows = fake.flows()
    assert flows[-1]["claims_param"].startswith('{"access_token"') and flows[-1]["state"] == "pending"
    fake.control("configure", {"interval": 2, "interval_as_string": True, "expires_in": 60})
    _, _, dc = devicecode(fake)
    assert dc["interval"] == "2" and dc["expires_in"] == 60, dc


@test
def devicecode_errors(fake):
    fresh(fake)
    st, _, body = devicecode(fake, client_id="11111111-2222-4333-8444-555555555555")
    assert st == 400
    check_error(body, "unauthorized_client", 700016)
    assert "11111111-2222-4333-8444-555555555555" in body["error_description"]
    st, _, body = fake.json("POST", "/%s/oauth2/v2.0/devicecode" % fake.tenant_id, form={"client_id": fake.client_id})
    check_error(body, "invalid_request", 900144)
    st, _, body = devicecode(fake, scope="https://management.azure.com/.default https://ml.azure.com/.default")
    check_error(body, "invalid_scope", 700022)
    st, _, body = devicecode(fake, client_id=fake.confidential_client_id)
    check_error(body, "invalid_client", 7000218)
    fake.control("configure", {"devicecode_error": {"aadsts": 50005}})
    st, _, body = devicecode(fake)
    assert st == 400
    check_error(body, "invalid_grant", 50005)
    fake.control("configure", {"devicecode_error": {"error": "temporarily_unavailable", "codes": [90006],
                                                    "status": 200, "description": "Try again."}})
    st, _, body = devicecode(fake)
    assert st == 200
    check_error(body, "temporarily_unavailable", 90006)


@test
def polling_states(fake):
    fresh(fake)
    _, _, dc = devicecode(fake)
    st, _, body = poll(fake, dc["device_code"], client_request_id="x")
    assert st == 400
    check_error(body, "authorization_pending", 70016)
    st, _, body = fake.json("POST", "/organizations/oauth2/v2.0/token", form={
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": fake.client_id,
        "device_code": "DAQAB-not-a-code"}, headers={"client-request-id": "0f4b1b7e-96b0-4e4a-a8c3-5f5d3d2c1b0a"})
    check_error(body, "bad_verification_code", 70018)
    assert body["correlation_id"] == "0f4b1b7e-96b0-4e4a-a8c3-5f5d3d2c1b0a"  # Entra echoes client-request-id
    st, _, body = fake.json("POST", "/organizations/oauth2/v2.0/token?client-request-id=1f4b1b7e-96b0-4e4a-a8c3-5f5d3d2c1b0a",
                            form={"grant_type": "device_code", "client_id": fake.client_id, "device_code": "x"})
    assert body["correlation_id"] == "1f4b1b7e-96b0-4e4a-a8c3-5f5d3d2c1b0a"  # msal-node sends it in the query
    fake.control("decline", {"user_code": dc["user_code"]})
    _, _, body = poll(fake, dc["device_code"])
    check_error(body, "authorization_declined", None)
    _, _, body = poll(fake, dc["device_code"])
    check_error(body, "invalid_grant", 90120)
    # expiry
    fake.control("configure", {"expires_in": 1})
    _, _, dc = devicecode(fake)
    time.sleep(1.1)
    _, _, body = poll(fake, dc["device_code"])
    check_error(body, "expired_token", 70019)
    # slow_down, then pending after approval, then the token, then redeemed
    fake.control("configure", {"expires_in": 900, "slow_down": 1, "pending_after_approve": 1})
    _, _, dc = devicecode(fake)
    _, _, body = poll(fake, dc["device_code"])
    check_error(body, "slow_down", None)
    fake.control("approve", {})
    _, _, body = poll(fake, dc["device_code"])
    check_error(body, "authorization_pending", 70016)
    st, _, tok = poll(fake, dc["device_code"], grant_type="device_code")  # msal-node's short form
    assert st == 200 and "access_token" in tok, tok
    st, _, body = poll(fake, dc["device_code"])
    check_error(body, "invalid_grant", 90120)
    # a device code only works for its own client
    _, _, dc = devicecode(fake)
    fake.control("configure", {"clients": {"0a0b0c0d-0000-4000-8000-000000000001": {"public": True}}})
    _, _, body = poll(fake, dc["device_code"], client_id="0a0b0c0d-0000-4000-8000-000000000001")
    check_error(body, "bad_verification_code", 70018)


@test
def token_response_and_claims(fake):
    fresh(fake)
    extra = {"preferred_username": "alice@contoso.com", "name": "Alice",
             "groups": ["a1b2c3d4-0000-4000-8000-000000000001"], "roles": ["Node.Admin"],
             "wids": ["62e90394-69f5-4237-9190-012177145e10"]}
    tok = login(fake, extra, client_info="1")
    assert set(tok) == {"token_type", "scope", "expires_in", "ext_expires_in", "access_token", "refresh_token",
                        "id_token", "client_info"}, tok
    assert tok["token_type"] == "Bearer" and isinstance(tok["expires_in"], int)
    assert isinstance(tok["ext_expires_in"], int) and 3600 <= tok["expires_in"] <= 5400
    assert "https://management.azure.com/user_impersonation" in tok["scope"].split()
    head, idt, _ = jwt_parts(tok["id_token"])
    assert head == {"typ": "JWT", "alg": "RS256", "kid": head["kid"]}, head
    assert verify(fake, tok["id_token"])
    oid = idt["oid"]
    assert GUID.match(oid)
    for k in ("aud", "iss", "iat", "nbf", "exp", "name", "oid", "preferred_username", "sub", "tid", "ver",
              "uti", "rh", "aio", "groups", "roles", "wids"):
        assert k in idt, (k, idt)
    assert idt["aud"] == fake.client_id and idt["ver"] == "2.0" and idt["tid"] == fake.tenant_id
    assert idt["iss"] == "%s/%s/v2.0" % (fake.authority, fake.tenant_id)
    assert idt["exp"] - idt["iat"] == 3600 and idt["groups"] == extra["groups"]
    assert json.loads(b64d(tok["client_info"])) == {"uid": oid, "utid": fake.tenant_id}
    ahead, at, _ = jwt_parts(tok["access_token"])
    assert ahead["x5t"] == ahead["kid"] == head["kid"] and verify(fake, tok["access_token"])
    assert at["iss"] == "https://sts.windows.net/%s/" % fake.tenant_id and at["aud"] == "https://management.azure.com/"
    assert at["ver"] == "1.0" and at["amr"] == ["pwd", "mfa"] and at["scp"] == "user_impersonation"
    assert at["appid"] == fake.client_id and at["upn"] == "alice@contoso.com" and at["oid"] == oid
    assert 3600 <= at["exp"] - at["iat"] <= 5400 and at["exp"] - int(time.time()) <= tok["expires_in"] + 2
    # same UPN → same derived oid; sub differs per app but is stable
    tok2 = login(fake, {"preferred_username": "alice@contoso.com"})
    assert jwt_parts(tok2["id_token"])[1]["oid"] == oid
    assert jwt_parts(tok2["id_token"])[1]["sub"] == idt["sub"]
    # no offline_access → no refresh token; no openid → no id token
    tok3 = login(fake, scope="https://management.azure.com/.default")
    assert "refresh_token" not in tok3 and "id_token" not in tok3 and "client_info" not in tok3


@test
def claims_request_and_token_scenarios(fake):
    fresh(fake)
    st, _, dc = devicecode(fake, claims='{"access_token":{"acrs":{"essential":true,"value":"c1"},'
                                        '"xms_cc":{"values":["cp1"]}}}')
    fake.control("approve", {"user_code": dc["user_code"]})
    _, _, tok = poll(fake, dc["device_code"])
    _, at, _ = jwt_parts(tok["access_token"])
    assert at["acrs"] == ["c1"] and at["xms_cc"] == ["cp1"], at
    assert jwt_parts(tok["id_token"])[1]["acrs"] == ["c1"]
    fake.control("configure", {"id_token": {"set": {"tid": "00000000-0000-0000-0000-000000000001"},
                                            "drop": ["oid"], "exp_offset": -10}})
    _, idt, _ = jwt_parts(login(fake)["id_token"])
    assert "oid" not in idt and idt["tid"] == "00000000-0000-0000-0000-000000000001"
    assert idt["exp"] < time.time()
    fake.control("configure", {"id_token": None, "token_set": {"expires_in": "3599"}, "token_drop": ["scope"]})
    tok = login(fake)
    assert tok["expires_in"] == "3599" and "scope" not in tok


@test
def token_error_conditional_access(fake):
    fresh(fake, token_error={"aadsts": 53003})
    _, _, dc = devicecode(fake)
    fake.control("approve", {})
    st, _, body = poll(fake, dc["device_code"])
    assert st == 400
    check_error(body, "invalid_grant", 53003, "message_only")
    claims = json.loads(body["claims"])
    assert claims["access_token"]["capolids"]["essential"] is True
    assert GUID.match(claims["access_token"]["capolids"]["values"][0])
    for code in (50005, 50020, 50076, 50079, 50105, 50126, 50158, 53000, 53001, 53002, 65001, 700016,
                 7000218, 70016, 70018, 70019, 700082, 50173, 90120):
        fake.control("configure", {"token_error": {"aadsts": code}})
        _, _, dc = devicecode(fake)
        fake.control("approve", {})
        st, _, body = poll(fake, dc["device_code"])
        assert st == 400 and body["error_codes"] == [code], body
        assert re.match(r"AADSTS%d: \S" % code, body["error_description"]), body
        check_error(body, body["error"], code, body.get("suberror"))


@test
def refresh_token_rotation(fake):
    fresh(fake)
    tok = login(fake, {"preferred_username": "dave@contoso.com"})
    rt = tok["refresh_token"]
    form = {"grant_type": "refresh_token", "client_id": fake.client_id, "refresh_token": rt,
            "scope": "https://ml.azure.com/.default openid offline_access"}
    st, _, t2 = fake.json("POST", "/organizations/oauth2/v2.0/token", form=form)
    assert st == 200 and t2["refresh_token"] != rt, t2
    _, at, _ = jwt_parts(t2["access_token"])
    assert at["aud"] == "https://ml.azure.com" and at["upn"] == "dave@contoso.com"
    st, _, t3 = fake.json("POST", "/organizations/oauth2/v2.0/token", form=form)  # the old one still works
    assert st == 200, t3
    st, _, body = fake.json("POST", "/organizations/oauth2/v2.0/token", form=dict(form, refresh_token="1.AXbogus"))
    check_error(body, "invalid_grant", 9002313)
    fake.control("configure", {"refresh_error": {"aadsts": 700082}})
    st, _, body = fake.json("POST", "/organizations/oauth2/v2.0/token", form=form)
    check_error(body, "invalid_grant", 700082)


@test
def client_credentials_grant(fake):
    fresh(fake)
    form = {"grant_type": "client_credentials", "client_id": fake.confidential_client_id,
            "client_secret": fake.client_secret, "scope": "https://management.azure.com/.default"}
    st, _, tok = fake.json("POST", "/%s/oauth2/v2.0/token" % fake.tenant_id, form=form)
    assert st == 200 and set(tok) == {"token_type", "expires_in", "ext_expires_in", "access_token"}, tok
    _, at, _ = jwt_parts(tok["access_token"])
    assert at["appid"] == fake.confidential_client_id and at["idtyp"] == "app" and verify(fake, tok["access_token"])
    basic = base64.b64encode(("%s:%s" % (fake.confidential_client_id, fake.client_secret)).encode()).decode()
    st, _, tok = fake.json("POST", "/%s/oauth2/v2.0/token" % fake.tenant_id, headers={"Authorization": "Basic " + basic},
                           form={"grant_type": "client_credentials", "scope": "https://management.azure.com/.default"})
    assert st == 200, tok
    st, _, body = fake.json("POST", "/%s/oauth2/v2.0/token" % fake.tenant_id, form=dict(form, client_secret="nope"))
    check_error(body, "invalid_client", 7000215)
    st, _, body = fake.json("POST", "/%s/oauth2/v2.0/token" % fake.tenant_id,
                            form=dict(form, scope="https://management.azure.com/user_impersonation"))
    check_error(body, "invalid_scope", 1002012)
    st, _, body = fake.json("POST", "/%s/oauth2/v2.0/token" % fake.tenant_id, form=dict(form, grant_type="password"))
    check_error(body, "unsupported_grant_type", 70003)


@test
def signing_scenarios(fake):
    fresh(fake, sign="wrong_key")
    idt = login(fake)["id_token"]
    assert jwt_parts(idt)[0]["kid"] == jwt_parts(login(fake)["access_token"])[0]["kid"]
    assert not verify(fake, idt)
    fake.control("configure", {"sign": "unknown_kid"})
    idt = login(fake)["id_token"]
    st, _, jwks = fake.json("GET", "/%s/discovery/v2.0/keys" % fake.tenant_id)
    assert jwt_parts(idt)[0]["kid"] not in {k["kid"] for k in jwks["keys"]}
    fake.control("configure", {"sign": "none"})
    idt = login(fake)["id_token"]
    assert jwt_parts(idt)[0]["alg"] == "none" and idt.endswith(".")
    fake.control("configure", {"sign": "hs256"})
    idt = login(fake)["id_token"]
    head, _, sig = jwt_parts(idt)
    assert head["alg"] == "HS256" and len(sig) == 32 and not verify(fake, idt)
    fake.control("configure", {"sign": "good"})
    assert verify(fake, login(fake)["id_token"])
    st, _, body = fake.http("POST", "/_control/configure", body={"sign": "bogus"})[:3]
    assert st == 400
    st, _, body = fake.http("POST", "/_control/configure", body={"no_such_setting": 1})[:3]
    assert st == 400


@test
def graph_tokens_carry_a_nonce(fake):
    fresh(fake)
    tok = login(fake, scope="openid profile offline_access")
    head, at, _ = jwt_parts(tok["access_token"])
    assert "nonce" in head and at["aud"] == "https://graph.microsoft.com"
    assert not verify(fake, tok["access_token"])  # as with real Graph tokens
    assert verify(fake, tok["id_token"])


@test
def rotate_keys(fake):
    fresh(fake)
    old = fake.json("GET", "/%s/discovery/v2.0/keys" % fake.tenant_id)[2]["keys"][0]["kid"]
    old_tok = login(fake)["id_token"]
    r = fake.control("rotate_keys", {"keep_old": True})
    assert r["kid"] != old and r["kids"] == [r["kid"], old], r
    new_tok = login(fake)["id_token"]
    assert jwt_parts(new_tok)[0]["kid"] == r["kid"] and verify(fake, new_tok) and verify(fake, old_tok)
    fake.control("rotate_keys", {"keep_old": False})
    assert not verify(fake, old_tok) and not verify(fake, new_tok)
    fake.control("reset")
    assert [k["kid"] for k in fake.json("GET", "/%s/discovery/v2.0/keys" % fake.tenant_id)[2]["keys"]] == [old]
    assert verify(fake, old_tok)


@test
def fail_malformed_delay(fake):
    fresh(fake, fail={"discovery": 503, "token": 502}, fail_count={"token": 1}, malformed=["keys"],
          delay={"devicecode": 0.3})
    st, h, raw = fake.http("GET", "/%s/v2.0/.well-known/openid-configuration" % fake.tenant_id)
    assert st == 503 and h["content-type"].startswith("text/html") and b"<html>" in raw
    st, h, raw = fake.http("GET", "/%s/discovery/v2.0/keys" % fake.tenant_id)
    assert st == 200
    try:
        json.loads(raw)
        raise AssertionError("keys should be malformed")
    except ValueError:
        pass
    st, _, raw = fake.http("POST", "/%s/oauth2/v2.0/token" % fake.tenant_id, form={"grant_type": "x"})
    assert st == 502
    st, _, raw = fake.http("POST", "/%s/oauth2/v2.0/token" % fake.tenant_id, form={"grant_type": "x"})
    assert st == 400  # fail_count used up
    t = time.monotonic()
    devicecode(fake)
    assert time.monotonic() - t >= 0.3


@test
def imds_wire_format(fake):
    fresh(fake)
    for path in ("/metadata/identity/oauth2/token", "/metadata/identity/oauth2/token/"):
        st, _, body = imds(fake, path)
        assert st == 200, body
        assert set(body) == {"access_token", "refresh_token", "expires_in", "expires_on", "not_before",
                             "resource", "token_type"}, body
        assert all(isinstance(v, str) for v in body.values()), body
        assert body["resource"] == "https://management.azure.com/" and body["token_type"] == "Bearer"
        assert int(body["expires_on"]) - int(body["not_before"]) == int(body["expires_in"])
        _, at, _ = jwt_parts(body["access_token"])
        assert at["aud"] == "https://management.azure.com/" and at["oid"] == "9d8c7b6a-5f4e-4d3c-8b2a-1e0f9a8b7c6d"
        assert at["iss"] == "https://sts.windows.net/%s/" % fake.tenant_id and "xms_mirid" in at
        assert verify(fake, body["access_token"])
    st, _, body = imds(fake, headers={})
    assert st == 400 and body == {"error": "bad_request_102", "error_description": "Required metadata header not specified"}
    st, _, body = imds(fake, headers={"Metadata": "True"})
    assert st == 400 and body["error"] == "bad_request_102"
    st, _, body = imds(fake, headers={"Metadata": "true", "X-Forwarded-For": "10.0.0.1"})
    assert st == 400 and body["error"] == "invalid_request"
    st, _, body = imds(fake, client_id="7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f")
    assert st == 200 and jwt_parts(body["access_token"])[1]["appid"] == "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
    st, _, body = imds(fake, object_id="2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d")
    assert st == 200
    st, _, body = imds(fake, client_id="00000000-1111-4222-8333-444444444444")
    assert st == 400 and body == {"error": "invalid_request", "error_description": "Identity not found"}, body
    fake.control("configure", {"msi": {"known_client_ids": ["00000000-1111-4222-8333-444444444444"]}})
    st, _, body = imds(fake, client_id="00000000-1111-4222-8333-444444444444")
    assert st == 200
    st, _, body = imds(fake, resource=None)
    assert st == 400 and body["error"] == "invalid_request"
    fake.control("configure", {"msi": {"identity_not_found": True}})
    st, _, body = imds(fake)
    assert st == 400 and body["error_description"] == "Identity not found"


@test
def msi_failures_and_retry_after(fake):
    fresh(fake, msi={"fail": 429, "fail_count": 2, "retry_after": 3})
    st, h, body = imds(fake)
    assert st == 429 and h["retry-after"] == "3", (st, h)
    st, h, body = imds(fake)
    assert st == 429
    st, h, body = imds(fake)
    assert st == 200, body
    fake.control("configure", {"msi": {"fail": None, "malformed": True}})
    st, _, raw = fake.http("GET", fake.msi_base + "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x",
                           headers={"Metadata": "true"})
    assert st == 200
    try:
        json.loads(raw)
        raise AssertionError("should be malformed")
    except ValueError:
        pass
    fake.control("configure", {"msi": {"malformed": False, "expires_in": 600, "expires_on_format": "date"}})
    st, _, body = imds(fake)
    assert body["expires_in"] == "600" and re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d \+00:00", body["expires_on"])


@test
def azure_ml_app_service_arc(fake):
    fresh(fake)
    url = fake.msi_base + "/msi/token?api-version=2017-09-01&resource=https://ml.azure.com"
    st, _, body = fake.json("GET", url, headers={"secret": fake.msi_secret})
    assert st == 200 and set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}, body
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d \+00:00", body["expires_on"]), body
    st, _, body = fake.json("GET", url + "&clientid=7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
                            headers={"secret": fake.msi_secret})
    assert body["client_id"] == "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
    st, _, body = fake.json("GET", url, headers={"secret": "wrong"})
    assert st == 401
    url = fake.msi_base + "/appservice/token?api-version=2019-08-01&resource=https://management.azure.com/"
    st, _, body = fake.json("GET", url, headers={"X-IDENTITY-HEADER": fake.identity_header})
    assert st == 200 and set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}, body
    assert body["expires_on"].isdigit() and body["client_id"] == "5b1a4e3c-2d7f-4a8b-9c6e-1f0a2b3c4d5e"
    st, _, body = fake.json("GET", url + "&principal_id=2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d",
                            headers={"X-IDENTITY-HEADER": fake.identity_header})
    assert body["client_id"] == "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
    st, _, body = fake.json("GET", url, headers={})
    assert st == 401
    url = fake.msi_base + "/arc/metadata/identity/oauth2/token?api-version=2020-06-01&resource=https://management.azure.com/"
    st, h, body = fake.json("GET", url, headers={"Metadata": "true"})
    assert st == 401 and h["www-authenticate"].startswith("Basic realm="), h
    path = h["www-authenticate"][len("Basic realm="):]
    assert path.endswith(".key") and os.path.dirname(path) == os.path.join(fake.tmp, "arc-tokens")
    assert os.stat(path).st_mode & 0o777 == 0o600
    secret = open(path).read()
    st, _, body = fake.json("GET", url, headers={"Metadata": "true", "Authorization": "Basic " + secret})
    assert st == 200 and all(isinstance(v, str) for v in body.values()), body
    st, _, body = fake.json("GET", url, headers={"Metadata": "true", "Authorization": "Basic nope"})
    assert st == 401


@test
def counters_log_and_reset(fake):
    fresh(fake)
    tok = login(fake)
    imds(fake)
    r = fake.requests()
    c = r["counts"]
    assert set(c) >= {"discovery", "keys", "devicecode", "token", "instance", "imds", "azureml", "appservice", "arc"}
    assert c["devicecode"] == 1 and c["token"] == 1 and c["imds"] == 1, c
    polls = [e for e in r["log"] if e["endpoint"] == "token"]
    e = polls[0]
    assert e["form"]["device_code"] == "<redacted>" and e["status"] == 200 and e["method"] == "POST"
    assert set(e) == {"endpoint", "method", "path", "query", "form", "headers", "status", "time"}
    assert tok["refresh_token"] not in json.dumps(r)
    fake.http("GET", fake.msi_base + "/msi/token?api-version=2017-09-01&resource=x", headers={"secret": fake.msi_secret})
    e = fake.requests()["log"][-1]
    assert e["endpoint"] == "azureml" and {k.lower(): v for k, v in e["headers"].items()}["secret"] == "<redacted>"
    fake.control("configure", {"interval": 1})
    fake.control("reset")
    r = fake.requests()
    assert all(v == 0 for v in r["counts"].values()) and r["log"] == [] and fake.flows() == []
    assert devicecode(fake)[2]["interval"] == 5
    log = open(os.path.join(fake.tmp, "fake.log")).read()
    assert "devicecode POST" in log and tok["access_token"] not in log


@test
def control_approve_decline_errors(fake):
    fresh(fake)
    st, _, body = fake.json("POST", "/_control/approve", body={})
    assert st == 404
    _, _, dc = devicecode(fake)
    r = fake.control("approve", {"claims": {"preferred_username": "erin@contoso.com", "oid": "11111111-aaaa-4bbb-8ccc-222222222222"}})
    assert r["user_code"] == dc["user_code"] and r["claims"]["oid"] == "11111111-aaaa-4bbb-8ccc-222222222222"
    st, _, body = fake.json("POST", "/_control/decline", body={"user_code": dc["user_code"]})
    assert st == 409  # already approved
    flows = fake.flows()
    assert flows[0]["approved_claims"]["preferred_username"] == "erin@contoso.com" and flows[0]["state"] == "approved"


@test
def sigterm_exits_cleanly(fake):
    d = tempfile.mkdtemp(prefix="fake-term-")
    try:
        f = Fake.start(d)
        assert f.stop() == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


ARM_PERMS = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/" \
            "Microsoft.Authorization/permissions"


def arm_get(fake, token, path=ARM_PERMS, query="api-version=2022-04-01", headers=None):
    h = {"Authorization": "Bearer " + token} if token is not None else {}
    h.update(headers or {})
    url = path if path.startswith("https:") else path + ("?" + query if query else "")
    return fake.json("GET", url, headers=h)


@test
def arm_permissions_builtin_roles(fake):
    fresh(fake)
    tok = login(fake, {"preferred_username": "rbac1@contoso.com"})["access_token"]
    st, _, body = arm_get(fake, tok)
    assert st == 403 and body["error"]["code"] == "AuthorizationFailed", body
    fake.control("configure", {"arm": {"roles": {"RBAC1@contoso.com": [
        "Virtual Machine User Login", "virtual machine administrator login", "Owner", "Contributor", "Reader"]}}})
    st, _, body = arm_get(fake, tok)
    assert st == 200 and set(body) == {"value"}, body
    v = body["value"]
    assert len(v) == 5 and all(set(e) == {"actions", "notActions", "dataActions", "notDataActions"} for e in v), v
    assert v[0]["dataActions"] == ["Microsoft.Compute/virtualMachines/login/action",
                                   "Microsoft.HybridCompute/machines/login/action"], v[0]
    assert "Microsoft.Compute/virtualMachines/loginAsAdmin/action" in v[1]["dataActions"], v[1]
    assert v[2] == {"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []}, v[2]
    assert v[3]["actions"] == ["*"] and "Microsoft.Authorization/*/Write" in v[3]["notActions"] \
        and v[3]["dataActions"] == [], v[3]
    assert v[4]["actions"] == ["*/read"] and v[4]["dataActions"] == [], v[4]
    assert fake.requests()["counts"]["arm"] == 2
    # custom roles inline, keyed by object id; condition passed through
    oid = jwt_parts(tok)[1]["oid"]
    fake.control("configure", {"arm": {"roles": {oid: [{"dataActions": ["Microsoft.Compute/*"],
                                                        "notDataActions": ["*/loginAsAdmin/action"],
                                                        "condition": "x", "conditionVersion": "2.0"}]}}})
    st, _, body = arm_get(fake, tok)
    assert st == 200 and body["value"] == [{"actions": [], "notActions": [], "dataActions": ["Microsoft.Compute/*"],
                                            "notDataActions": ["*/loginAsAdmin/action"], "condition": "x",
                                            "conditionVersion": "2.0"}], body
    # bad settings are refused
    for bad in ({"roles": {"x": ["No Such Role"]}}, {"roles": {"x": [{"actionz": []}]}}, {"nope": 1},
                {"roles": {"x": "Owner"}}, {"page_size": 0}):
        st, _, body = fake.json("POST", "/_control/configure", body={"arm": bad})
        assert st == 400, (bad, body)


@test
def arm_permissions_pagination(fake):
    fresh(fake, arm={"roles": {"rbac2@contoso.com": ["Reader", "Owner", "Contributor"]}, "page_size": 2})
    tok = login(fake, {"preferred_username": "rbac2@contoso.com"})["access_token"]
    st, _, p1 = arm_get(fake, tok)
    assert st == 200 and len(p1["value"]) == 2, p1
    assert p1["nextLink"] == "%s%s?api-version=2022-04-01&$skiptoken=2" % (fake.authority, ARM_PERMS), p1
    st, _, p2 = arm_get(fake, tok, p1["nextLink"])
    assert st == 200 and len(p2["value"]) == 1 and "nextLink" not in p2, p2
    st, _, body = arm_get(fake, tok, query="api-version=2022-04-01&$skiptoken=x")
    assert st == 400 and body["error"]["code"] == "InvalidSkipToken", body
    fake.control("configure", {"arm": {"next_link_base": "https://other.example"}})
    st, _, p1 = arm_get(fake, tok)
    assert p1["nextLink"].startswith("https://other.example/subscriptions/"), p1


@test
def arm_permissions_request_checks(fake):
    fresh(fake, arm={"roles": {"rbac3@contoso.com": ["Reader"]}})
    tok = login(fake, {"preferred_username": "rbac3@contoso.com"})["access_token"]
    st, _, body = arm_get(fake, tok, query="")
    assert st == 400 and body["error"]["code"] == "MissingApiVersionParameter", body
    st, _, body = arm_get(fake, tok, query="api-version=1999-01-01")
    assert st == 400 and body["error"]["code"] == "InvalidApiVersionParameter", body
    st, _, body = arm_get(fake, tok, path="/subscriptions/nope/providers/Microsoft.Authorization/permissions")
    assert st == 400 and body["error"]["code"] == "InvalidSubscriptionId", body
    st, h, body = arm_get(fake, None)
    assert st == 401 and body["error"]["code"] == "AuthenticationFailed", body
    assert 'error="invalid_token"' in h["www-authenticate"], h
    head, claims, sig = tok.split(".")
    st, _, body = arm_get(fake, "%s.%s.%s" % (head, claims, sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")))
    assert st == 401 and body["error"]["code"] == "InvalidAuthenticationToken", body
    st, _, body = arm_get(fake, "not-a-jwt")
    assert st == 401 and body["error"]["code"] == "InvalidAuthenticationToken", body
    # a token for another resource, an expired one, one signed with an unpublished key
    ml = login(fake, {"preferred_username": "rbac3@contoso.com"}, scope="https://ml.azure.com/.default")
    st, _, body = arm_get(fake, ml["access_token"])
    assert st == 401 and body["error"]["code"] == "InvalidAuthenticationTokenAudience", body
    fake.control("configure", {"access_token": {"exp_offset": -10}})
    st, _, body = arm_get(fake, login(fake, {"preferred_username": "rbac3@contoso.com"})["access_token"])
    assert st == 401 and body["error"]["code"] == "ExpiredAuthenticationToken", body
    fake.control("configure", {"access_token": {"exp_offset": None}, "sign": "wrong_key"})
    st, _, body = arm_get(fake, login(fake, {"preferred_username": "rbac3@contoso.com"})["access_token"])
    assert st == 401, body
    # a token signed with a rotated-out key that is still published is fine
    fake.control("configure", {"sign": "good"})
    st, _, _ = arm_get(fake, tok)
    assert st == 200
    fake.control("rotate_keys", {"keep_old": True})
    st, _, _ = arm_get(fake, tok)
    assert st == 200
    fake.control("rotate_keys", {"keep_old": False})
    st, _, _ = arm_get(fake, tok)
    assert st == 401
    st, h, _ = fake.http("POST", ARM_PERMS + "?api-version=2022-04-01", form={})
    assert st == 405


@test
def arm_permissions_scenarios(fake):
    challenge = {"access_token": {"acrs": {"essential": True, "value": "c2"}}}
    fresh(fake, arm={"roles": {"rbac4@contoso.com": ["Virtual Machine User Login"]}, "challenge": challenge})
    tok = login(fake, {"preferred_username": "rbac4@contoso.com"})["access_token"]
    st, h, body = arm_get(fake, tok)
    assert st == 401, body
    www = h["www-authenticate"]
    assert www.startswith('Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
                          'authorize", error="insufficient_claims", claims="'), www
    b64 = re.search(r'claims="([^"]+)"', www).group(1)
    assert json.loads(base64.b64decode(b64)) == challenge, www
    # a token carrying acrs c2 (asked with the claims parameter) passes
    st2, _, dc = devicecode(fake, claims=json.dumps(challenge))
    fake.control("approve", {"user_code": dc["user_code"], "claims": {"preferred_username": "rbac4@contoso.com"}})
    _, _, t2 = poll(fake, dc["device_code"])
    assert jwt_parts(t2["access_token"])[1]["acrs"] == ["c2"]
    st, _, body = arm_get(fake, t2["access_token"])
    assert st == 200 and len(body["value"]) == 1, body
    fake.control("configure", {"arm": {"challenge": None, "fail": 503}})
    st, _, body = arm_get(fake, tok)
    assert st == 503 and body["error"]["code"] == "InternalServerError", body
    fake.control("configure", {"arm": {"fail": None, "malformed": True}})
    st, _, raw = fake.http("GET", ARM_PERMS + "?api-version=2022-04-01", headers={"Authorization": "Bearer " + tok})
    assert st == 200
    try:
        json.loads(raw)
        assert False, "malformed body parsed"
    except ValueError:
        pass
    fake.control("configure", {"arm": {"malformed": None}, "fail": {"arm": 502}})
    st, h, raw = fake.http("GET", ARM_PERMS + "?api-version=2022-04-01", headers={"Authorization": "Bearer " + tok})
    assert st == 502 and h["content-type"].startswith("text/html")
    log = fake.requests()["log"]
    assert all(e["headers"].get("Authorization") == "<redacted>" for e in log if e["endpoint"] == "arm"), log
    assert fake.requests()["counts"]["arm"] == 5


if __name__ == "__main__":
    run(setup, teardown)
