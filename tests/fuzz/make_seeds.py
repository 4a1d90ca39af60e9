"""Write the seed corpora of the fuzz targets added for the hardening work
(tests/fuzz/corpus/<target>/). Run from the source tree:
    /usr/bin/python3 tests/fuzz/make_seeds.py [path/to/userdb_tool]
The userdb seeds need tests/nss/userdb_tool from a build directory."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = b"\n@@\n"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
AUTH = "https://login.example.test"
RSA_N = ("ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4Ql"
         "L-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUs"
         "LA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoud"
         "F8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ")
JWKS = json.dumps({"keys": [{"kty": "RSA", "use": "sig", "kid": "k1", "e": "AQAB", "n": RSA_N,
                             "issuer": "https://login.example.test/{tenantid}/v2.0"}]})
ERR = {"error": "invalid_grant",
       "error_description": "AADSTS53003: Access has been blocked by Conditional Access policies.\r\n"
                            "Trace ID: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\r\nCorrelation ID: "
                            "1f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\r\nTimestamp: 2025-01-02 03:04:05Z",
       "error_codes": [53003], "timestamp": "2025-01-02 03:04:05Z",
       "trace_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
       "correlation_id": "1f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
       "error_uri": "https://login.microsoftonline.com/error?code=53003",
       "suberror": "message_only",
       "claims": json.dumps({"access_token": {"capolids": {"essential": True, "values": [
           "2f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"]}}})}


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def j(obj):
    return json.dumps(obj).encode()


def tokens():
    ok = {"token_type": "Bearer", "scope": "https://management.azure.com/user_impersonation",
          "expires_in": 4477, "ext_expires_in": 4477, "access_token": "eyJ0eXAi.eyJhdWQi.c2ln",
          "refresh_token": "1.AQ0A-rt", "id_token": "eyJ0eXAi.eyJhdWQi.c2ln",
          "client_info": "eyJ1aWQiOiIxIn0"}
    put("fuzz_tokens", "entra_ok", b"\x00" + j(ok))
    put("fuzz_tokens", "string_expiry", b"\x00" + j(dict(ok, expires_in="3599")))
    put("fuzz_tokens", "expires_on_legacy", b"\x00" + j(dict(ok, expires_on="06/20/2024 02:57:58 +00:00")))
    put("fuzz_tokens", "expires_on_epoch", b"\x00" + j(dict(ok, expires_on=1700003600)))
    put("fuzz_tokens", "ca_block", b"\x01" + j(ERR))
    put("fuzz_tokens", "error_200", b"\x00" + j({"error": "authorization_pending", "error_codes": ["70016"]}))
    put("fuzz_tokens", "html_500", b"\x05<html><body>Service unavailable</body></html>")
    put("fuzz_tokens", "lower_bearer", b"\x00" + j({"token_type": "bearer", "access_token": "x"}))


def devicecode():
    ok = {"user_code": "ABCD12345", "device_code": "DAQABAAEAAAD--DLA3VO7QrddgJg7Wevr",
          "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900, "interval": 5,
          "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin "
                     "and enter the code ABCD12345 to authenticate."}
    put("fuzz_devicecode", "entra", b"\x00" + j(ok))
    put("fuzz_devicecode", "entra_qr", b"\x08" + j(ok))
    put("fuzz_devicecode", "rfc8628", b"\x08" + j({"device_code": "x", "user_code": "WDJB-MJHT",
                                                   "verification_uri": "https://example.com/device",
                                                   "verification_uri_complete": "https://example.com/device?user_code=WDJB-MJHT",
                                                   "expires_in": "1800", "interval": "5"}))
    put("fuzz_devicecode", "google_url", b"\x00" + j({"device_code": "x", "user_code": "GQVQ-JKEC",
                                                      "verification_url": "https://www.google.com/device",
                                                      "expires_in": 1800}))
    put("fuzz_devicecode", "error", b"\x01" + j(dict(ERR, error="invalid_client", error_codes=[7000218])))


def oauth_error():
    put("fuzz_oauth_error", "ca_block", j(ERR))
    put("fuzz_oauth_error", "declined", j({"error": "authorization_declined", "error_codes": []}))
    put("fuzz_oauth_error", "codes_as_strings", j({"error": "invalid_grant", "error_codes": ["50076", "x"]}))
    put("fuzz_oauth_error", "code_in_text", j({"error": "x", "error_description": "AADSTS9002313: Invalid"}))
    put("fuzz_oauth_error", "unknown_code", j({"error": "weird_error", "error_codes": [999999999]}))
    put("fuzz_oauth_error", "wrong_type", j({"error": 5}))


def oidc():
    disc_url = AUTH + "/" + TENANT + "/v2.0/.well-known/openid-configuration"
    jwks_uri = AUTH + "/" + TENANT + "/discovery/v2.0/keys"
    disc = {"token_endpoint": AUTH + "/" + TENANT + "/oauth2/v2.0/token",
            "device_authorization_endpoint": AUTH + "/" + TENANT + "/oauth2/v2.0/devicecode",
            "issuer": AUTH + "/" + TENANT + "/v2.0", "jwks_uri": jwks_uri,
            "response_types_supported": ["code", "id_token"], "tenant_region_scope": "EU"}
    dj, kj = json.dumps(disc), JWKS

    def cache(url, body, at=1700000000 - 60):
        return j({"fetched_at": at, "url": url, "body": body})

    put("fuzz_oidc", "network", SEP.join([b"\x00", dj.encode(), kj.encode()]))
    put("fuzz_oidc", "cache_fresh", SEP.join([b"\x03", b"", b"", cache(disc_url, dj), cache(jwks_uri, kj)]))
    put("fuzz_oidc", "cache_stale", SEP.join([b"\x03", b"", b"", cache(disc_url, dj, 1600000000),
                                              cache(jwks_uri, kj, 1600000000)]))
    put("fuzz_oidc", "refetch", SEP.join([b"\x00", dj.encode(), kj.encode(), b"", b"", b"1699999000", kj.encode()]))
    put("fuzz_oidc", "insecure_dir", SEP.join([b"\x08", dj.encode(), kj.encode(), cache(disc_url, dj)]))
    put("fuzz_oidc", "http_endpoint", SEP.join([b"\x00", dj.replace("https://", "http://", 1).encode(), kj.encode()]))


def config():
    with open(os.path.join(HERE, "..", "..", "conf", "pam_entra.conf"), "rb") as f:
        put("fuzz_config", "example", f.read())
    base = ("tenant = %s\nclient_id = 4f6c3f2e-0d5a-4a3e-9a54-1c2b3d4e5f60\n" % TENANT)
    put("fuzz_config", "minimal", base)
    put("fuzz_config", "full", base + "authority = https://login.microsoftonline.com\n"
        "user_mapping = localpart\nallowed_domains = contoso.com, fabrikam.com\n"
        "local_users = breakglass admin\nallow_groups = 5a5a5a5a-1111-2222-3333-444444444444\n"
        "allow_roles = Login.Node\nadmin_roles = Node.Admin\nlogin_timeout = 100\nhttp_timeout = 10\n"
        "clock_skew = 60\nuid_min = 1900000000\nuid_max = 1999999999\nadmin_gid = 1899999999\n"
        "home_template = /home/%u\nshell = /bin/bash\ncreate_home = no\n"
        "subscription_id = 11111111-2222-3333-4444-555555555555\nresource_group = rg\nworkspace_name = ws\n"
        "msi_source = imds\nservice_accounts = svc-train @batch\nservice_uids = 5000-5999\n"
        "service_identities = svc-train:7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f\nexport_token = yes\n"
        "qr_code = no\ndebug\r\n")
    put("fuzz_config", "args", "debug\nlogin_timeout=30\nallow_users=alice@contoso.com\nconf=/x\n")
    put("fuzz_config", "dup_key", base + "tenant = other\n")


def msi():
    imds = {"access_token": "eyJ0eXAi.eyJhdWQi.c2ln", "refresh_token": "", "expires_in": "86399",
            "expires_on": "1700086399", "ext_expires_in": "86399", "not_before": "1699999999",
            "resource": "https://ml.azure.com", "token_type": "Bearer"}
    azml = {"access_token": "eyJ0eXAi.eyJhdWQi.c2ln", "expires_on": "11/15/2023 10:13:20 +00:00",
            "resource": "https://ml.azure.com", "token_type": "Bearer", "client_id": "x"}
    cache = {"access_token": "eyJ0eXAi.eyJhdWQi.c2ln", "resource": "https://ml.azure.com", "source": "imds",
             "expires_on": 1700086399, "refresh_on": 1700043199}
    put("fuzz_msi", "imds", SEP.join([b"\x00\x00\x00\x001700086399", j(imds)]))
    put("fuzz_msi", "imds_cached", SEP.join([b"\x04\x00\x00\x00https://ml.azure.com/.default", j(imds), b"", b"", b"",
                                            j(cache)]))
    put("fuzz_msi", "azureml", SEP.join([b"\x01\x00\x00\x0011/15/2023 10:13:20 +00:00", j(azml)]))
    put("fuzz_msi", "appservice", SEP.join([b"\x02\x00\x00\x00x", j(dict(azml, expires_on="1700003600"))]))
    put("fuzz_msi", "arc", SEP.join([b"\x03\x02\x00\x00x", b"", j(imds), b"", b"@DIR@/fuzz.key"]))
    put("fuzz_msi", "retry_then_ok", SEP.join([b"\x00\x05\x04\x00x", b"<html>", b"{}", j(imds)]))
    put("fuzz_msi", "not_found", SEP.join([b"\x00\x01\x00\x00x", j({"error": "invalid_request",
                                                                    "error_description": "Identity not found"})]))
    put("fuzz_msi", "appservice_err", SEP.join([b"\x02\x01\x00\x00x", j({"statusCode": 400,
        "message": "Unable to load the proper Managed Identity.", "correlationId": "x"})]))


def rbac():
    page1 = {"value": [{"actions": [], "notActions": [],
                        "dataActions": ["Microsoft.Compute/virtualMachines/login/action",
                                        "Microsoft.HybridCompute/machines/login/action"],
                        "notDataActions": []}],
             "nextLink": "https://127.0.0.1:8443/subscriptions/11111111-2222-3333-4444-555555555555/"
                         "resourceGroups/rg/providers/Microsoft.Authorization/permissions?"
                         "api-version=2022-04-01&$skiptoken=1"}
    page2 = {"value": [{"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Delete"]},
                       {"dataActions": ["*/loginAsAdmin/action"], "condition": "@Resource[x] == 'y'",
                        "conditionVersion": "2.0"}]}
    chal = ('Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
            'error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUs'
            'InZhbHVlIjoiYzEifX19"')
    put("fuzz_rbac", "two_pages", SEP.join([b"\x00\x00\x00", j(page1), j(page2)]))
    put("fuzz_rbac", "challenge", SEP.join([chal.encode(), b"{}", b"", b"", chal.encode()]))
    put("fuzz_rbac", "forbidden", SEP.join([b"\x04", j({"error": {"code": "AuthorizationFailed", "message": "no"}})]))
    put("fuzz_rbac", "other_host", SEP.join([b"\x00\x00", j(dict(page1, nextLink="https://evil.example/x")), j(page2)]))


def userdb(tool):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([tool, d, "sync"], check=True)
        with open(os.path.join(d, "users.db"), "rb") as f:
            put("fuzz_userdb", "empty", b"\x00" + f.read())
        subprocess.run([tool, d, "add", "alice@contoso.com", "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9", "admin"],
                       check=True)
        subprocess.run([tool, d, "add", "bob@contoso.com", "1b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"], check=True)
        with open(os.path.join(d, "users.db"), "rb") as f:
            put("fuzz_userdb", "two_users", b"\x00" + f.read())
        subprocess.run([tool, d, "bulk", "user", "40"], check=True)
        with open(os.path.join(d, "users.db"), "rb") as f:
            put("fuzz_userdb", "bulk40", b"\x00" + f.read())
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([tool, d, "sync", "localpart"], check=True)
        subprocess.run([tool, d, "add", "carol", ""], check=False)
        with open(os.path.join(d, "users.db"), "rb") as f:
            put("fuzz_userdb", "localpart", b"\x00" + f.read())


tokens()
devicecode()
oauth_error()
oidc()
config()
msi()
rbac()
if len(sys.argv) > 1:
    userdb(sys.argv[1])
