#!/usr/bin/python3
"""A local fake of Microsoft Entra ID and of the managed-identity endpoints.

Test double for pam_entra: speaks Entra's wire format (see
/work/shared/PROTOCOL.md and tests/fake/README.md, which documents the whole
contract: command line, fake.json, control API, scenarios).

Debian's /usr/bin/python3 standard library + python3-cryptography only.
Everything binds 127.0.0.1; nothing is cached across runs.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import http.server
import json
import os
import random
import re
import secrets
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_TENANT_ID = "8e9f1c2a-3b4d-4e5f-9a0b-1c2d3e4f5a6b"
DEFAULT_DOMAIN = "contoso.com"
PUBLIC_CLIENT_ID = "4f6c3f2e-0d5a-4a3e-9a54-1c2b3d4e5f60"
CONFIDENTIAL_CLIENT_ID = "6a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
CONFIDENTIAL_CLIENT_SECRET = "fake~client.secret-0123456789abcdefABCDEF"
CONFIDENTIAL_CLIENT_OID = "0c1d2e3f-4a5b-4c6d-9e7f-8a9b0c1d2e3f"

SUB = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-fake/providers"
SYSTEM_MI = {"client_id": "5b1a4e3c-2d7f-4a8b-9c6e-1f0a2b3c4d5e",
             "object_id": "9d8c7b6a-5f4e-4d3c-8b2a-1e0f9a8b7c6d",
             "mi_res_id": SUB + "/Microsoft.Compute/virtualMachines/vm-fake"}
USER_MI = {"client_id": "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
           "object_id": "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d",
           "mi_res_id": SUB + "/Microsoft.ManagedIdentity/userAssignedIdentities/uai-fake"}

OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
GRAPH = "https://graph.microsoft.com"
ARM = "https://management.azure.com/"
VERIFICATION_URI = "https://microsoft.com/devicelogin"
USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
MAX_BODY = 1 << 20
SECRET_FIELDS = ("device_code", "code", "refresh_token", "client_secret",
                 "client_assertion", "password", "assertion")
SECRET_HEADERS = ("authorization", "secret", "x-identity-header", "cookie")
ENDPOINTS = ("discovery", "keys", "devicecode", "token", "instance",
             "imds", "azureml", "appservice", "arc")

# Entra's error for an AADSTS number: (error, text, suberror, ca-claims?).
# Texts follow [ED] reference-error-codes.md; {…} are filled per request.
AADSTS = {
    50005: ("invalid_grant", "User tried to log in to a device from a platform ({platform}) that's currently not supported through Conditional Access policy.", None, False),
    50020: ("invalid_grant", "User account '{upn}' from identity provider 'live.com' does not exist in tenant '{domain}' and cannot access the application '{client_id}'(Fake App) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account.", None, False),
    50076: ("invalid_grant", "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '{resource}'.", "basic_action", True),
    50078: ("invalid_grant", "Presented multi-factor authentication has expired due to policies configured by your administrator, you must refresh your multi-factor authentication to access '{resource}'.", "basic_action", True),
    50079: ("invalid_grant", "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '{resource}'.", "basic_action", True),
    50105: ("invalid_grant", "Your administrator has configured the application Fake App ('{client_id}') to block users unless they are specifically granted ('assigned') access to the application. The signed in user '{upn}' is blocked because they are not a direct member of a group with access, nor had access directly assigned by an administrator. Please contact your administrator to assign access to this application.", None, False),
    50126: ("invalid_grant", "Error validating credentials due to invalid username or password.", None, False),
    50158: ("invalid_grant", "External security challenge not satisfied. User will be redirected to another page or authentication provider to satisfy additional authentication challenges.", "basic_action", True),
    50173: ("invalid_grant", "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{issued}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{now}'.", None, False),
    53000: ("invalid_grant", "Device is not in required device state: compliant. Conditional Access policy requires a compliant device, and the device is not compliant. The user must enroll their device with an approved MDM provider like Intune.", "message_only", True),
    53001: ("invalid_grant", "Device is not in required device state: domain_joined. Conditional Access policy requires a domain joined device, and the device is not domain joined. Have the user use a domain joined device.", "message_only", True),
    53002: ("invalid_grant", "Application used is not an approved application for Conditional Access policy. User must use one of the apps from the list of approved applications to use in order to get access.", "message_only", True),
    53003: ("invalid_grant", "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.", "message_only", True),
    65001: ("invalid_grant", "The user or administrator has not consented to use the application with ID '{client_id}' named 'Fake App'. Send an interactive authorization request for this user and resource.", "consent_required", False),
    70000: ("invalid_grant", "Provided grant is invalid or malformed.", None, False),
    70003: ("unsupported_grant_type", "The app requested an unsupported grant type '{grant_type}'.", None, False),
    70011: ("invalid_scope", "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid.", None, False),
    70016: ("authorization_pending", "OAuth 2.0 device flow error. Authorization is pending. Continue polling.", None, False),
    70018: ("bad_verification_code", "Invalid verification code entered.", None, False),
    70019: ("expired_token", "Verification code expired.", None, False),
    70043: ("invalid_grant", "The refresh token has expired or is invalid due to sign-in frequency checks by conditional access. The token was issued on {issued} and the maximum allowed lifetime for this request is 3600.", None, False),
    90002: ("invalid_tenant", "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", None, False),
    90120: ("invalid_grant", "Device code flow request already authorized or declined.", None, False),
    700016: ("unauthorized_client", "Application with identifier '{client_id}' was not found in the directory '{domain}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", None, False),
    700022: ("invalid_scope", "The provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid.", None, False),
    700082: ("invalid_grant", "The refresh token has expired due to inactivity. The token was issued on {issued} and was inactive for 90.00:00:00.", None, False),
    900144: ("invalid_request", "The request body must contain the following parameter: '{param}'.", None, False),
    9002313: ("invalid_grant", "Invalid request. Request is malformed or invalid.", None, False),
    7000215: ("invalid_client", "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'.", None, False),
    7000218: ("invalid_client", "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", None, False),
    1002012: ("invalid_scope", "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", None, False),
}
# RFC 8628 names Entra is not documented to send: no AADSTS number.
NO_CODE = {
    "authorization_declined": "The end user denied the authorization request.",
    "access_denied": "The authorization request was denied.",
    "slow_down": "Polling too frequently. Increase the polling interval by 5 seconds.",
}

DEFAULT_CONFIG = {
    "interval": 5, "interval_as_string": False, "expires_in": 900,
    "devicecode_error": None, "token_error": None, "refresh_error": None,
    "pending_after_approve": 0, "slow_down": 0,
    "id_token": {}, "access_token": {}, "sign": "good",
    "fail": {}, "fail_count": {}, "malformed": [], "delay": {},
    "issuer_template": False, "token_lifetime": None,
    "devicecode_set": {}, "devicecode_drop": [], "token_set": {}, "token_drop": [],
    "clients": {}, "msi": {},
}
MERGED = ("fail", "fail_count", "delay", "msi", "clients", "id_token", "access_token",
          "devicecode_set", "token_set")
MSI_KEYS = ("fail", "fail_count", "retry_after", "malformed", "delay", "identity_not_found",
            "expires_in", "expires_on_format", "known_client_ids", "set", "drop")
SIGN_MODES = ("good", "wrong_key", "unknown_kid", "none", "hs256")

# --- ARM permissions endpoint (Azure RBAC) -----------------------------------
# GET {arm}/subscriptions/.../providers/Microsoft.Authorization/permissions on
# the HTTPS port; see README "ARM permissions". Built-in role definitions as
# Azure publishes them ([AZD] built-in-roles/compute.md, privileged.md,
# general.md): only the permissions matter here.
_VM_LOGIN_ACTIONS = ["Microsoft.Network/publicIPAddresses/read", "Microsoft.Network/virtualNetworks/read",
                     "Microsoft.Network/loadBalancers/read", "Microsoft.Network/networkInterfaces/read",
                     "Microsoft.Compute/virtualMachines/*/read", "Microsoft.HybridCompute/machines/*/read",
                     "Microsoft.HybridConnectivity/endpoints/listCredentials/action"]
BUILTIN_ROLES = {
    "Virtual Machine User Login": {
        "actions": _VM_LOGIN_ACTIONS, "notActions": [],
        "dataActions": ["Microsoft.Compute/virtualMachines/login/action",
                        "Microsoft.HybridCompute/machines/login/action"],
        "notDataActions": []},
    "Virtual Machine Administrator Login": {
        "actions": _VM_LOGIN_ACTIONS, "notActions": [],
        "dataActions": ["Microsoft.Compute/virtualMachines/login/action",
                        "Microsoft.Compute/virtualMachines/loginAsAdmin/action",
                        "Microsoft.HybridCompute/machines/login/action",
                        "Microsoft.HybridCompute/machines/loginAsAdmin/action"],
        "notDataActions": []},
    "Owner": {"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []},
    "Contributor": {
        "actions": ["*"],
        "notActions": ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
                       "Microsoft.Authorization/elevateAccess/Action",
                       "Microsoft.Blueprint/blueprintAssignments/write",
                       "Microsoft.Blueprint/blueprintAssignments/delete",
                       "Microsoft.Compute/galleries/share/action", "Microsoft.Purview/consents/write",
                       "Microsoft.Purview/consents/delete",
                       "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
                       "Microsoft.Subscription/cancel/action", "Microsoft.Subscription/enable/action"],
        "dataActions": [], "notDataActions": []},
    "Reader": {"actions": ["*/read"], "notActions": [], "dataActions": [], "notDataActions": []},
}
ARM_KEYS = ("roles", "page_size", "fail", "malformed", "challenge", "next_link_base")
ARM_API_VERSIONS = ("2022-04-01", "2018-07-01", "2018-01-01-preview", "2015-07-01")
ARM_AUDIENCES = ("https://management.azure.com/", "https://management.azure.com",
                 "https://management.core.windows.net/")
PERMISSION_LISTS = ("actions", "notActions", "dataActions", "notDataActions")
ARM_PERMISSIONS_SUFFIX_CASED = "/providers/Microsoft.Authorization/permissions"
ARM_PERMISSIONS_SUFFIX = ARM_PERMISSIONS_SUFFIX_CASED.lower()
ENDPOINTS += ("arm",)
DEFAULT_CONFIG["arm"] = {}
MERGED += ("arm",)


def arm_role_permission(role):
    """One permissions entry for a built-in role name or an inline custom role."""
    if isinstance(role, str):
        name = next((n for n in BUILTIN_ROLES if n.lower() == role.lower()), None)
        if name is None:
            raise ValueError("unknown built-in role %r" % role)
        return json.loads(jdump(BUILTIN_ROLES[name]))
    if not isinstance(role, dict):
        raise ValueError("a role is a built-in role name or an object")
    bad = [k for k in role if k not in PERMISSION_LISTS + ("condition", "conditionVersion")]
    if bad:
        raise ValueError("unknown custom role field(s) %s" % bad)
    out = {k: list(role.get(k) or []) for k in PERMISSION_LISTS}
    for k in ("condition", "conditionVersion"):
        if k in role:
            out[k] = role[k]
    return out


def check_arm_config(v):
    if v is None:
        return
    if not isinstance(v, dict):
        raise ValueError("arm wants an object")
    bad = [x for x in v if x not in ARM_KEYS]
    if bad:
        raise ValueError("unknown arm setting(s) %s" % bad)
    roles = v.get("roles")
    if roles is not None:
        if not isinstance(roles, dict):
            raise ValueError("arm.roles wants {oid or upn: [roles]}")
        for who, lst in roles.items():
            if not isinstance(lst, list):
                raise ValueError("arm.roles[%r] wants a list" % who)
            for r in lst:
                arm_role_permission(r)
    if v.get("page_size") is not None and int(v["page_size"]) < 1:
        raise ValueError("arm.page_size must be >= 1")


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def int_bytes(n):
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def jdump(obj):
    return json.dumps(obj, separators=(",", ":"))


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def entra_ts(t=None):
    return (t or utcnow()).strftime("%Y-%m-%d %H:%M:%SZ")


def is_guid(s):
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", s or ""))


def write_atomic(path, data, mode=0o644):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class SigningKey:
    """An RSA-2048 key with a self-signed certificate, as Entra publishes them."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = utcnow()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.accesscontrol.windows.net")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=5 * 365))
                .sign(self.key, hashes.SHA256()))
        der = cert.public_bytes(serialization.Encoding.DER)
        self.kid = b64u(hashlib.sha1(der).digest())  # Entra: kid == x5t
        self.x5c = base64.b64encode(der).decode("ascii")
        pub = self.key.public_key().public_numbers()
        self.n, self.e = b64u(int_bytes(pub.n)), b64u(int_bytes(pub.e))
        self.public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def jwk(self, issuer):
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "n": self.n,
                "e": self.e, "x5c": [self.x5c], "issuer": issuer}

    def sign(self, data):
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def private_pem(self):
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def make_tls(d):
    """Test CA + server certificate for 127.0.0.1 and localhost (EC P-256: fast)."""
    now = utcnow()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pam_entra fake test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_file = os.path.join(d, "ca.pem")
    write_atomic(ca_file, ca.public_bytes(pem))
    write_atomic(os.path.join(d, "server.pem"), cert.public_bytes(pem))
    write_atomic(os.path.join(d, "server.key"), key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(d, "server.pem"), os.path.join(d, "server.key"))
    return ca_file, ctx


class Reply(Exception):
    """Raised by endpoint code to send a finished response."""

    def __init__(self, status, body, ctype="application/json; charset=utf-8", headers=None):
        super().__init__(status)
        self.status, self.body, self.ctype, self.headers = status, body, ctype, headers or {}


class State:
    def __init__(self, args):
        self.lock = threading.RLock()
        self.dir = args.dir
        self.tenant_id = args.tenant_id.lower()
        self.domain = args.tenant_domain.lower()
        self.arc_dir = args.arc_key_dir or os.path.join(args.dir, "arc-tokens")
        self.https_port = self.http_port = 0
        self.pair_secret = secrets.token_bytes(32)
        self.msi_secret = secrets.token_urlsafe(24)
        self.identity_header = secrets.token_urlsafe(24)
        self.initial_key = SigningKey()
        self._other_key = None
        self.reset()

    @property
    def authority(self):
        return "https://127.0.0.1:%d" % self.https_port

    @property
    def other_key(self):
        # A key that is never published: for the wrong_key/unknown_kid scenarios.
        if self._other_key is None:
            self._other_key = SigningKey()
        return self._other_key

    def reset(self):
        with self.lock:
            self.config = json.loads(jdump(DEFAULT_CONFIG))
            self.flows = []
            self.refresh_tokens = {}
            self.arc_keys = set()
            self.counts = {e: 0 for e in ENDPOINTS}
            self.log = []
            self.msi_failures = 0
            self.key = self.initial_key
            self.keys = [self.initial_key]
            self.save_signing_key()

    def save_signing_key(self):
        write_atomic(os.path.join(self.dir, "signing.key"), self.key.private_pem(), 0o600)

    def configure(self, body):
        if not isinstance(body, dict):
            raise ValueError("configure wants a JSON object")
        with self.lock:
            for k, v in body.items():
                if k not in DEFAULT_CONFIG:
                    raise ValueError("unknown setting %r" % k)
                if k == "sign" and v not in SIGN_MODES:
                    raise ValueError("sign must be one of %s" % ", ".join(SIGN_MODES))
                if k == "arm":
                    check_arm_config(v)
                if k == "msi" and isinstance(v, dict):
                    bad = [x for x in v if x not in MSI_KEYS]
                    if bad:
                        raise ValueError("unknown msi setting(s) %s" % bad)
                    if "fail" in v or "fail_count" in v:
                        self.msi_failures = 0
                if k in MERGED and isinstance(v, dict):
                    for kk, vv in v.items():
                        if vv is None:
                            self.config[k].pop(kk, None)
                        else:
                            self.config[k][kk] = vv
                elif k in MERGED and v is None:
                    self.config[k] = {}
                else:
                    self.config[k] = v

    def client(self, client_id):
        cid = (client_id or "").lower()
        extra = self.config["clients"].get(cid) or self.config["clients"].get(client_id or "")
        if extra is not None:
            return extra
        if cid == PUBLIC_CLIENT_ID:
            return {"public": True}
        if cid == CONFIDENTIAL_CLIENT_ID:
            return {"public": False, "secret": CONFIDENTIAL_CLIENT_SECRET, "oid": CONFIDENTIAL_CLIENT_OID}
        return None

    def tenant_ok(self, tenant):
        t = tenant.lower()
        return t in (self.tenant_id, self.domain, "organizations", "common")

    def pairwise(self, *parts):
        return b64u(hmac.new(self.pair_secret, "|".join(parts).encode(), hashlib.sha256).digest())

    # --- tokens ---------------------------------------------------------

    @staticmethod
    def payload_text(claims, spec):
        # Raw payload edits (README: id_token/access_token "payload_raw",
        # "payload_append"): what json.dumps cannot produce, such as
        # duplicate keys, is still signed with the current key.
        spec = spec or {}
        text = jdump(claims)
        if "payload_append" in spec:
            text = text[:-1] + str(spec["payload_append"]) + "}"
        if "payload_raw" in spec:
            text = str(spec["payload_raw"])
        return text.encode("utf-8", "surrogatepass")

    def jwt(self, header, claims, spec=None):
        mode = self.config["sign"]
        payload = self.payload_text(claims, spec)
        if mode == "none":
            head = dict({"typ": "JWT", "alg": "none"}, **((spec or {}).get("header_set") or {}))
            return "%s.%s." % (b64u(jdump(head).encode()), b64u(payload))
        key = self.key
        if mode == "wrong_key":
            key = self.other_key
        header = dict(header)
        if "kid" in header:
            header["kid"] = self.other_key.kid if mode == "unknown_kid" else self.key.kid
        if "x5t" in header:
            header["x5t"] = header["kid"]
        if mode == "unknown_kid":
            key = self.other_key
        if mode == "hs256":
            header["alg"] = "HS256"
        header.update((spec or {}).get("header_set") or {})
        nonce = header.pop("nonce", None)
        if nonce is not None:
            # Microsoft Graph: the signature covers the SHA-256 of the nonce,
            # the token carries the nonce itself, so standard checks fail.
            signed_head = dict(header, nonce=b64u(hashlib.sha256(nonce.encode()).digest()))
            head_plain = dict(header, nonce=nonce)
        else:
            signed_head = head_plain = header
        body = b64u(payload)
        signing_input = ("%s.%s" % (b64u(jdump(signed_head).encode()), body)).encode()
        if mode == "hs256":
            sig = hmac.new(self.key.public_pem, signing_input, hashlib.sha256).digest()
        else:
            sig = key.sign(signing_input)
        return "%s.%s.%s" % (b64u(jdump(head_plain).encode()), body, b64u(sig))

    @staticmethod
    def adjust(claims, spec, now):
        for name in ("exp", "nbf", "iat"):
            if (name + "_offset") in (spec or {}):
                claims[name] = now + int(spec[name + "_offset"])
        claims.update((spec or {}).get("set") or {})
        for c in (spec or {}).get("drop") or []:
            claims.pop(c, None)
        return claims

    def lifetime(self):
        lt = self.config.get("token_lifetime")
        return int(lt) if lt is not None else random.randint(3600, 5400)

    def user_token_response(self, client_id, scopes, user, claims_param, client_info, iss_tenant):
        res = resource_of(scopes)
        now = int(time.time())
        lt = self.lifetime()
        tid = user.get("tid", self.tenant_id)
        oid = user["oid"]
        upn = user.get("upn") or user.get("preferred_username")
        requested = requested_claims(claims_param)
        at = {"aud": audience(res), "iss": "https://sts.windows.net/%s/" % tid, "iat": now,
              "nbf": now, "exp": now + lt, "acr": "1", "aio": b64u(secrets.token_bytes(48)),
              "amr": ["pwd", "mfa"], "appid": client_id, "appidacr": "0", "idtyp": "user",
              "ipaddr": "127.0.0.1", "name": user.get("name"), "oid": oid,
              "puid": secrets.token_hex(8).upper(), "rh": "0.AX" + b64u(secrets.token_bytes(40)) + ".",
              "scp": scp_of(scopes, res), "sub": self.pairwise("at", oid, res),
              "tid": tid, "unique_name": upn, "upn": upn, "uti": b64u(secrets.token_bytes(16)),
              "ver": "1.0"}
        for k, v in user.items():
            if k not in ("preferred_username",):
                at[k] = v
        if requested.get("acrs") and "acrs" not in user:
            at["acrs"] = requested["acrs"]
        if requested.get("xms_cc"):
            at["xms_cc"] = requested["xms_cc"]
        self.adjust(at, self.config["access_token"], now)
        header = {"typ": "JWT", "alg": "RS256", "x5t": "", "kid": ""}
        if res.rstrip("/") == GRAPH:
            header["nonce"] = b64u(secrets.token_bytes(32))
        resp = {"token_type": "Bearer", "scope": scope_echo(scopes, res), "expires_in": lt,
                "ext_expires_in": lt, "access_token": self.jwt(header, at, self.config["access_token"])}
        if "offline_access" in scopes:
            rt = "1.AX" + b64u(secrets.token_bytes(24)) + "." + b64u(secrets.token_bytes(180))
            self.refresh_tokens[rt] = {"client_id": client_id, "user": dict(user),
                                       "claims_param": claims_param, "issued": time.time()}
            resp["refresh_token"] = rt
        if "openid" in scopes:
            idt = {"aud": client_id,
                   "iss": "https://127.0.0.1:%d/%s/v2.0" % (self.https_port, tid),
                   "iat": now, "nbf": now, "exp": now + 3600,
                   "aio": b64u(secrets.token_bytes(48)), "name": user.get("name"), "oid": oid,
                   "preferred_username": user.get("preferred_username"),
                   "rh": "0.AX" + b64u(secrets.token_bytes(40)) + ".",
                   "sub": self.pairwise("id", oid, client_id.lower()), "tid": tid,
                   "uti": b64u(secrets.token_bytes(16)), "ver": "2.0"}
            for k, v in user.items():
                idt[k] = v
            if requested.get("acrs") and "acrs" not in user:
                idt["acrs"] = requested["acrs"]
            self.adjust(idt, self.config["id_token"], now)
            resp["id_token"] = self.jwt({"typ": "JWT", "alg": "RS256", "kid": ""}, idt, self.config["id_token"])
        if client_info == "1":
            resp["client_info"] = b64u(jdump({"uid": oid, "utid": tid}).encode())
        for k, v in (self.config["token_set"] or {}).items():
            resp[k] = v
        for k in self.config["token_drop"] or []:
            resp.pop(k, None)
        return resp

    def app_token(self, appid, oid, resource, extra=None):
        now = int(time.time())
        lt = self.lifetime()
        claims = {"aud": resource, "iss": "https://sts.windows.net/%s/" % self.tenant_id,
                  "iat": now, "nbf": now, "exp": now + lt, "aio": b64u(secrets.token_bytes(48)),
                  "appid": appid, "appidacr": "1", "idp": "https://sts.windows.net/%s/" % self.tenant_id,
                  "idtyp": "app", "oid": oid, "rh": "0.AX" + b64u(secrets.token_bytes(40)) + ".",
                  "sub": oid, "tid": self.tenant_id, "uti": b64u(secrets.token_bytes(16)), "ver": "1.0"}
        claims.update(extra or {})
        self.adjust(claims, self.config["access_token"], now)
        return self.jwt({"typ": "JWT", "alg": "RS256", "x5t": "", "kid": ""}, claims), now, lt


def requested_claims(claims_param):
    """acrs / xms_cc values asked for in a `claims` request parameter."""
    out = {}
    try:
        c = json.loads(claims_param) if claims_param else {}
        at = c.get("access_token") or {}
        for name in ("acrs", "xms_cc"):
            spec = at.get(name)
            if isinstance(spec, dict):
                vals = spec.get("values") or ([spec["value"]] if "value" in spec else [])
                if vals:
                    out[name] = [str(v) for v in vals]
    except (ValueError, AttributeError, TypeError):
        pass
    return out


def resource_scopes(scopes):
    return [s for s in scopes if s not in OIDC_SCOPES]


def resource_of_scope(s):
    if "://" in s or "/" in s:
        return s.rsplit("/", 1)[0] or s
    return GRAPH


def resource_of(scopes):
    rs = resource_scopes(scopes)
    if not rs:
        return GRAPH
    return resource_of_scope(rs[0])


def distinct_resources(scopes):
    return {resource_of_scope(s).rstrip("/").lower() for s in resource_scopes(scopes)}


def audience(resource):
    norm = resource.rstrip("/")
    if norm in ("https://management.azure.com", "https://management.core.windows.net"):
        return norm + "/"
    return norm


def scp_of(scopes, res):
    names = []
    for s in resource_scopes(scopes) or ["User.Read"]:
        n = s.rsplit("/", 1)[-1]
        names.append("user_impersonation" if n == ".default" else n)
    if res.rstrip("/") == GRAPH:
        names = [n if n != "user_impersonation" else "User.Read" for n in names] + ["profile", "openid", "email"]
    return " ".join(dict.fromkeys(names))


def scope_echo(scopes, res):
    rs = resource_scopes(scopes)
    norm = res.rstrip("/")
    if not rs or norm == GRAPH:
        return "openid profile User.Read email"
    out = []
    for s in rs:
        if s.endswith("/.default"):
            out += ([norm + "/user_impersonation"] if audience(res).endswith("/") else []) + [norm + "/.default"]
        else:
            out.append(s)
    return " ".join(dict.fromkeys(out))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-entra"
    sys_version = ""
    timeout = 30

    def log_message(self, fmt, *args):
        pass

    def version_string(self):
        return "fake-entra"

    # --- plumbing ---------------------------------------------------------

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def dispatch(self, method):
        self.endpoint = None
        self.form = {}
        url = urllib.parse.urlsplit(self.path)
        self.url_path = url.path
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        status = 500
        recorded = False
        try:
            try:
                if method == "POST":
                    self.read_form()
                if self.server.tls:
                    self.route_https(method)
                else:
                    self.route_http(method)
                raise Reply(404, jdump({"error": "not_found", "error_description": "no such endpoint: %s" % url.path}))
            except Reply as r:
                status = r.status
                # Counted before the answer leaves: a client that reads the
                # counters right after its response must see its request.
                if self.endpoint:
                    self.record(method, status)
                    recorded = True
                self.send(r)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        finally:
            if self.endpoint and not recorded:
                self.record(method, status)

    def read_form(self):
        n = self.headers.get("Content-Length")
        if n is None:
            if self.headers.get("Transfer-Encoding"):
                raise Reply(411, "Length Required", "text/plain")
            n = "0"
        try:
            n = int(n)
        except ValueError:
            raise Reply(400, "Bad Request", "text/plain")
        if n < 0 or n > MAX_BODY:
            raise Reply(413, "Request Entity Too Large", "text/plain")
        self.raw_body = self.rfile.read(n) if n else b""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            self.form = {k: v[-1] for k, v in urllib.parse.parse_qs(
                self.raw_body.decode("utf-8", "replace"), keep_blank_values=True).items()}

    def send(self, r):
        body = r.body if isinstance(r.body, bytes) else r.body.encode()
        self.send_response(r.status)
        self.send_header("Content-Type", r.ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in r.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def record(self, method, status):
        st = self.server.state
        form = {k: ("<redacted>" if k in SECRET_FIELDS else v) for k, v in self.form.items()}
        headers = {k: ("<redacted>" if k.lower() in SECRET_HEADERS else v) for k, v in self.headers.items()}
        entry = {"endpoint": self.endpoint, "method": method, "path": self.url_path,
                 "query": self.query, "form": form, "headers": headers, "status": status,
                 "time": time.time()}
        with st.lock:
            st.counts[self.endpoint] = st.counts.get(self.endpoint, 0) + 1
            st.log.append(entry)
        line = "%s %s %s %s %s -> %d\n" % (entry_ts(), self.client_address[0], self.endpoint, method,
                                          self.url_path, status)
        self.server.logfile.write(line)
        self.server.logfile.flush()

    def json_reply(self, obj, status=200, headers=None):
        raise Reply(status, jdump(obj), headers=headers)

    def begin(self, endpoint):
        """Count the request and apply fail / malformed / delay scenarios."""
        st = self.server.state
        self.endpoint = endpoint
        with st.lock:
            cfg = st.config
            delay = cfg["delay"].get(endpoint)
            fail = cfg["fail"].get(endpoint)
            if fail:
                left = cfg["fail_count"].get(endpoint)
                if left is not None:
                    if left <= 1:
                        cfg["fail"].pop(endpoint, None)
                        cfg["fail_count"].pop(endpoint, None)
                    else:
                        cfg["fail_count"][endpoint] = left - 1
            malformed = endpoint in (cfg["malformed"] or [])
        if delay:
            time.sleep(float(delay))
        if fail:
            fail = int(fail)
            reason = self.responses.get(fail, ("Error",))[0]
            html = ("<html><head><title>%d %s</title></head><body><center><h1>%d %s</h1></center>"
                    "<hr><center>nginx</center></body></html>\n" % (fail, reason, fail, reason))
            raise Reply(fail, html, "text/html")
        if malformed:
            raise Reply(200, '{"token_type":"Bearer","error":"x", "access_tok', )

    # --- Entra (HTTPS) ----------------------------------------------------

    def route_https(self, method):
        p = self.url_path
        st = self.server.state
        if p.startswith("/_control/"):
            self.control(method, p[len("/_control/"):])
        if p.lower().startswith("/subscriptions/") and p.lower().endswith(ARM_PERMISSIONS_SUFFIX):
            self.arm_permissions(method)
        m = re.fullmatch(r"/([^/]+)/(v2\.0/\.well-known/openid-configuration|discovery/v2\.0/keys|"
                         r"discovery/keys|discovery/instance|oauth2/v2\.0/devicecode|oauth2/v2\.0/token)", p)
        if not m:
            return
        tenant, what = m.group(1), m.group(2)
        ep = {"v2.0/.well-known/openid-configuration": "discovery", "discovery/v2.0/keys": "keys",
              "discovery/keys": "keys", "discovery/instance": "instance",
              "oauth2/v2.0/devicecode": "devicecode", "oauth2/v2.0/token": "token"}[what]
        want = "POST" if ep in ("devicecode", "token") else "GET"
        self.begin(ep)
        if method != want:
            raise Reply(405, "Method Not Allowed", "text/plain", {"Allow": want})
        if ep == "instance":
            self.instance()
        if not st.tenant_ok(tenant):
            self.error(90002, tenant=tenant)
        getattr(self, ep)(tenant)

    def tenant_path(self, tenant):
        t = tenant.lower()
        return t if t in ("common", "organizations") else self.server.state.tenant_id

    def issuer(self, tenant):
        st = self.server.state
        if st.config["issuer_template"] or tenant.lower() in ("common", "organizations"):
            return "%s/{tenantid}/v2.0" % st.authority
        return "%s/%s/v2.0" % (st.authority, st.tenant_id)

    def discovery(self, tenant):
        st = self.server.state
        base = "%s/%s" % (st.authority, self.tenant_path(tenant))
        doc = {
            "token_endpoint": base + "/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": base + "/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self.issuer(tenant),
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": base + "/oauth2/v2.0/authorize",
            "device_authorization_endpoint": base + "/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": base + "/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                                 "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time",
                                 "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash",
                                 "c_hash", "email"],
            "kerberos_endpoint": base + "/kerberos",
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
        self.json_reply(doc, headers={"Cache-Control": "max-age=86400, private"})

    def keys(self, tenant):
        st = self.server.state
        with st.lock:
            keys = [k.jwk(self.issuer(tenant)) for k in st.keys]
        self.json_reply({"keys": keys}, headers={"Cache-Control": "max-age=86400, private"})

    def instance(self):
        st = self.server.state
        auth = self.query.get("authorization_endpoint", "")
        u = urllib.parse.urlsplit(auth)
        # MSAL Python sends the authority's host name without its port.
        if (u.hostname or "").lower() not in ("127.0.0.1", "localhost") or u.port not in (None, st.https_port):
            self.json_reply({"error": "invalid_instance",
                             "error_description": "AADSTS50049: Unknown or invalid instance.\r\nTrace ID: %s\r\n"
                                                  "Correlation ID: %s\r\nTimestamp: %s" % (
                                                      uuid.uuid4(), uuid.uuid4(), entra_ts()),
                             "error_codes": [50049], "timestamp": entra_ts(),
                             "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4()),
                             "error_uri": st.authority + "/error?code=50049"}, 400)
        parts = [x for x in u.path.split("/") if x]
        tenant = parts[0] if parts else "common"
        host = "%s:%d" % (u.hostname.lower(), st.https_port)
        self.json_reply({"tenant_discovery_endpoint": "https://%s/%s/v2.0/.well-known/openid-configuration" % (
            host, tenant), "api-version": "1.1", "metadata": [
            {"preferred_network": host, "preferred_cache": host, "aliases": [host]}]})

    def error(self, code=None, error=None, status=400, suberror=None, claims=None, text=None,
              codes=None, **fill):
        """Send Entra's error body (PROTOCOL §1e)."""
        st = self.server.state
        if code is not None and code in AADSTS:
            e, t, sub, ca = AADSTS[code]
            error = error or e
            text = text or t
            suberror = suberror or sub
            if ca and claims is None:
                claims = jdump({"access_token": {"capolids": {"essential": True, "values": [
                    str(uuid.uuid5(uuid.NAMESPACE_URL, "capolicy:%d" % code))]}}})
        if text is None:
            text = NO_CODE.get(error, "Error.")
        values = {"client_id": self.form.get("client_id", ""), "domain": st.domain, "upn": "",
                  "resource": "", "platform": "Linux", "issued": entra_ts(), "now": entra_ts(),
                  "grant_type": self.form.get("grant_type", ""), "scope": self.form.get("scope", ""),
                  "tenant": "", "param": ""}
        values.update(fill)
        try:
            text = text.format(**values)
        except (KeyError, IndexError, ValueError):
            pass
        now = utcnow()
        ts = entra_ts(now)
        trace = str(uuid.uuid4())
        cri = self.headers.get("client-request-id") or self.query.get("client-request-id") or ""
        corr = cri.lower() if is_guid(cri) else str(uuid.uuid4())
        if codes is None:
            codes = [code] if code is not None else []
        prefix = ("AADSTS%d: " % codes[0]) if codes else ""
        body = {"error": error,
                "error_description": "%s%s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s" % (
                    prefix, text, trace, corr, ts),
                "error_codes": codes, "timestamp": ts, "trace_id": trace, "correlation_id": corr,
                "error_uri": "%s/error?code=%s" % (st.authority, codes[0] if codes else "")}
        if suberror:
            body["suberror"] = suberror
        if claims:
            body["claims"] = claims if isinstance(claims, str) else jdump(claims)
        raise Reply(status, jdump(body), headers={
            "Cache-Control": "no-store, no-cache", "Pragma": "no-cache", "x-ms-request-id": trace})

    def configured_error(self, spec, **fill):
        spec = dict(spec)
        status = int(spec.get("status", 400))
        if "aadsts" in spec:
            self.error(int(spec["aadsts"]), error=spec.get("error"), status=status,
                       suberror=spec.get("suberror"), claims=spec.get("claims"),
                       text=spec.get("description"), **fill)
        codes = [int(c) for c in spec.get("codes", [])]
        text = spec.get("description")
        if text is None and codes and codes[0] in AADSTS:
            text = AADSTS[codes[0]][1]
        self.error(None, error=spec.get("error", "invalid_request"), status=status,
                   suberror=spec.get("suberror"), claims=spec.get("claims"), text=text, codes=codes, **fill)

    def token_ok(self, resp):
        raise Reply(200, jdump(resp), headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache",
                                               "x-ms-request-id": str(uuid.uuid4())})

    def require(self, name):
        v = self.form.get(name)
        if not v:
            self.error(900144, param=name)
        return v

    def check_client(self, device_flow):
        st = self.server.state
        cid = self.require("client_id")
        client = st.client(cid)
        if client is None:
            self.error(700016)
        if device_flow and not client.get("public", False):
            self.error(7000218)
        return cid, client

    def devicecode(self, tenant):
        st = self.server.state
        cid, _ = self.check_client(True)
        scope = self.require("scope")
        scopes = scope.split()
        if len(distinct_resources(scopes)) > 1:
            self.error(700022, scope=scope)
        with st.lock:
            cfg = st.config
            if cfg["devicecode_error"]:
                self.configured_error(cfg["devicecode_error"], resource=audience(resource_of(scopes)))
            user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(9))
            device_code = "DAQABIQEAAAD" + b64u(secrets.token_bytes(240))
            interval = int(cfg["interval"])
            expires_in = int(cfg["expires_in"])
            flow = {"user_code": user_code, "device_code": device_code, "client_id": cid,
                    "scopes": scopes, "scope": scope, "claims_param": self.form.get("claims"),
                    "tenant": tenant, "created": time.time(), "expires_at": time.time() + expires_in,
                    "state": "pending", "approved_claims": None, "polls": 0}
            st.flows.append(flow)
            body = {"user_code": user_code, "device_code": device_code,
                    "verification_uri": VERIFICATION_URI, "expires_in": expires_in,
                    "interval": str(interval) if cfg["interval_as_string"] else interval,
                    "message": "To sign in, use a web browser to open the page %s and enter the code %s "
                               "to authenticate." % (VERIFICATION_URI, user_code)}
            body.update(cfg["devicecode_set"] or {})
            for k in cfg["devicecode_drop"] or []:
                body.pop(k, None)
        self.token_ok(body)

    def token(self, tenant):
        gt = self.form.get("grant_type")
        if not gt:
            self.error(900144, param="grant_type")
        if gt in ("urn:ietf:params:oauth:grant-type:device_code", "device_code"):
            self.grant_device_code(tenant)
        if gt == "refresh_token":
            self.grant_refresh(tenant)
        if gt == "client_credentials":
            self.grant_client_credentials(tenant)
        self.error(70003, grant_type=gt)

    def grant_device_code(self, tenant):
        st = self.server.state
        cid, _ = self.check_client(True)
        code = self.form.get("device_code") or self.form.get("code")
        if not code:
            self.error(900144, param="device_code")
        with st.lock:
            cfg = st.config
            flow = next((f for f in st.flows if secrets.compare_digest(f["device_code"], code)), None)
            if flow is None or flow["client_id"].lower() != cid.lower():
                self.error(70018)
            flow["polls"] += 1
            if self.form.get("claims"):
                flow["token_claims_param"] = self.form["claims"]
            if flow["state"] in ("pending", "approved") and time.time() >= flow["expires_at"]:
                flow["state"] = "expired"
            if flow["state"] == "expired":
                self.error(70019)
            if flow["state"] in ("redeemed", "failed"):
                self.error(90120)
            if flow["state"] == "declined":
                flow["state"] = "failed"
                self.error(None, error="authorization_declined")
            if cfg["slow_down"] > 0:
                cfg["slow_down"] -= 1
                self.error(None, error="slow_down")
            if flow["state"] == "pending":
                self.error(70016)
            # approved
            if cfg["pending_after_approve"] > 0:
                cfg["pending_after_approve"] -= 1
                self.error(70016)
            user = flow["approved_claims"]
            if cfg["token_error"]:
                spec = cfg["token_error"]
                cfg["token_error"] = None
                flow["state"] = "failed"
                self.configured_error(spec, upn=user.get("preferred_username", ""),
                                      resource=audience(resource_of(flow["scopes"])))
            flow["state"] = "redeemed"
            claims_param = flow.get("token_claims_param") or flow["claims_param"]
            resp = st.user_token_response(cid, flow["scopes"], user, claims_param,
                                          self.form.get("client_info"), tenant)
        self.token_ok(resp)

    def grant_refresh(self, tenant):
        st = self.server.state
        cid, _ = self.check_client(False)
        rt = self.require("refresh_token")
        scope = self.require("scope")
        scopes = scope.split()
        if len(distinct_resources(scopes)) > 1:
            self.error(700022, scope=scope)
        with st.lock:
            rec = st.refresh_tokens.get(rt)
            if rec is None:
                self.error(9002313)
            if rec["client_id"].lower() != cid.lower():
                self.error(70000)
            if st.config["refresh_error"]:
                self.configured_error(st.config["refresh_error"], upn=rec["user"].get("preferred_username", ""),
                                      issued=entra_ts(datetime.datetime.fromtimestamp(
                                          rec["issued"], datetime.timezone.utc)),
                                      resource=audience(resource_of(scopes)))
            resp = st.user_token_response(cid, scopes, rec["user"], self.form.get("claims") or rec["claims_param"],
                                          self.form.get("client_info"), tenant)
        self.token_ok(resp)

    def grant_client_credentials(self, tenant):
        st = self.server.state
        cid, secret = self.form.get("client_id"), self.form.get("client_secret")
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                cid, secret = urllib.parse.unquote_plus(u), urllib.parse.unquote_plus(p)
                self.form.setdefault("client_id", cid)
            except (ValueError, UnicodeDecodeError):
                self.error(7000218)
        if not cid:
            self.error(900144, param="client_id")
        client = st.client(cid)
        if client is None:
            self.error(700016, client_id=cid)
        if not secret:
            self.error(7000218)
        if client.get("public") or not client.get("secret") or \
                not hmac.compare_digest(str(client["secret"]).encode(), secret.encode()):
            self.error(7000215, client_id=cid)
        scope = self.require("scope")
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            self.error(1002012, scope=scope)
        res = audience(resource_of(scopes))
        with st.lock:
            oid = client.get("oid") or str(uuid.uuid5(uuid.NAMESPACE_URL, "fake-sp:" + cid.lower()))
            extra = {"roles": client["roles"]} if client.get("roles") else {}
            tok, _, lt = st.app_token(cid, oid, res, extra)
        self.token_ok({"token_type": "Bearer", "expires_in": lt, "ext_expires_in": lt, "access_token": tok})

    # --- control --------------------------------------------------------

    def control(self, method, what):
        st = self.server.state
        body = {}
        if method == "POST" and getattr(self, "raw_body", b""):
            try:
                body = json.loads(self.raw_body)
            except ValueError:
                self.json_reply({"error": "body is not JSON"}, 400)
        if body is None:
            body = {}
        if what == "requests":  # GET (POST accepted too)
            with st.lock:
                self.json_reply({"counts": dict(st.counts), "log": list(st.log)})
        if what == "flows":  # GET (POST accepted too)
            with st.lock:
                self.json_reply([{"user_code": f["user_code"], "state": f["state"], "client_id": f["client_id"],
                                  "scope": f["scope"], "polls": f["polls"],
                                  "claims_param": f["claims_param"],
                                  "token_claims_param": f.get("token_claims_param"),
                                  "approved_claims": f["approved_claims"]} for f in st.flows])
        if what == "config":  # GET (POST accepted too)
            with st.lock:
                self.json_reply(st.config)
        if method != "POST":
            self.json_reply({"error": "unknown control request %s %s" % (method, what)}, 404)
        if what == "reset":
            st.reset()
            self.json_reply({"ok": True})
        if what == "configure":
            try:
                st.configure(body)
            except (ValueError, TypeError) as e:
                self.json_reply({"error": str(e)}, 400)
            self.json_reply({"ok": True})
        if what in ("approve", "decline"):
            with st.lock:
                flow = self.find_flow(body.get("user_code"))
                if what == "decline":
                    flow["state"] = "declined"
                    self.json_reply({"ok": True, "user_code": flow["user_code"]})
                claims = dict(body.get("claims") or {})
                upn = claims.setdefault("preferred_username", "alice@%s" % st.domain)
                claims.setdefault("name", upn.split("@")[0].capitalize())
                claims.setdefault("oid", str(uuid.uuid5(uuid.NAMESPACE_URL, "pam_entra-fake-user:" + upn.lower())))
                flow["approved_claims"] = claims
                flow["state"] = "approved"
                self.json_reply({"ok": True, "user_code": flow["user_code"], "claims": claims})
        if what == "rotate_keys":
            new = SigningKey()
            with st.lock:
                st.keys = ([new] + st.keys) if body.get("keep_old") else [new]
                st.key = new
                st.save_signing_key()
                self.json_reply({"ok": True, "kid": new.kid, "kids": [k.kid for k in st.keys]})
        self.json_reply({"error": "unknown control request %s" % what}, 404)

    def find_flow(self, user_code):
        st = self.server.state
        if user_code:
            flow = next((f for f in st.flows if f["user_code"] == user_code), None)
        else:
            flow = next((f for f in reversed(st.flows) if f["state"] == "pending"), None)
        if flow is None:
            self.json_reply({"error": "no such pending flow"}, 404)
        if flow["state"] != "pending":
            self.json_reply({"error": "flow is %s" % flow["state"]}, 409)
        return flow

    # --- ARM permissions (HTTPS) -------------------------------------------

    def arm_error(self, status, code, message, headers=None):
        raise Reply(status, jdump({"error": {"code": code, "message": message}}),
                    headers=dict(headers or {}, **{"x-ms-request-id": str(uuid.uuid4())}))

    def arm_token_claims(self):
        """The claims of the caller's token, if the fake signed it for ARM; else 401 as ARM."""
        from cryptography.exceptions import InvalidSignature
        st = self.server.state
        www = 'Bearer authorization_uri="https://login.microsoftonline.com/%s", error="invalid_token", ' \
              'error_description="%s"'

        def reject(code, text):
            self.arm_error(401, code, text, {"WWW-Authenticate": www % (st.tenant_id, text)})

        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            reject("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        tok = auth[7:].strip()
        try:
            h, c, sig = tok.split(".")
            pad = lambda x: base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))  # noqa: E731
            head, claims, sig = json.loads(pad(h)), json.loads(pad(c)), pad(sig)
            if not isinstance(head, dict) or not isinstance(claims, dict):
                raise ValueError("not objects")
        except (ValueError, TypeError, UnicodeDecodeError):
            reject("InvalidAuthenticationToken", "The access token is invalid.")
        with st.lock:
            key = next((k for k in st.keys if k.kid == head.get("kid")), None)
        if head.get("alg") != "RS256" or key is None:
            reject("InvalidAuthenticationToken", "The access token is invalid.")
        try:
            key.key.public_key().verify(sig, ("%s.%s" % (h, c)).encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            reject("InvalidAuthenticationToken", "The access token is invalid.")
        if claims.get("aud") not in ARM_AUDIENCES:
            reject("InvalidAuthenticationTokenAudience",
                   "The access token has been obtained for wrong audience or resource '%s'." % claims.get("aud"))
        if claims.get("iss") != "https://sts.windows.net/%s/" % st.tenant_id:
            reject("InvalidAuthenticationTokenTenant", "The access token is from the wrong issuer.")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
            reject("ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time.")
        return claims

    def arm_permissions(self, method):
        st = self.server.state
        self.begin("arm")
        if method != "GET":
            raise Reply(405, "Method Not Allowed", "text/plain", {"Allow": "GET"})
        scope = self.url_path[:-len(ARM_PERMISSIONS_SUFFIX)]
        parts = scope.split("/")
        if len(parts) < 3 or not is_guid(parts[2]) or any(x in ("", ".", "..") for x in parts[3:]):
            self.arm_error(400, "InvalidSubscriptionId" if len(parts) < 3 or not is_guid(parts[2])
                           else "InvalidResourceId", "The scope '%s' is not valid." % scope)
        if "api-version" not in self.query:
            self.arm_error(400, "MissingApiVersionParameter",
                           "The api-version query parameter (?api-version=) is required for all requests.")
        if self.query["api-version"] not in ARM_API_VERSIONS:
            self.arm_error(400, "InvalidApiVersionParameter",
                           "The api-version '%s' is invalid. The supported versions are '%s'." % (
                               self.query["api-version"], "','".join(ARM_API_VERSIONS)))
        claims = self.arm_token_claims()
        with st.lock:
            acfg = json.loads(jdump(st.config["arm"]))
        if acfg.get("fail"):
            status = int(acfg["fail"])
            self.arm_error(status, "InternalServerError" if status >= 500 else "Fake%d" % status,
                           "Fake scenario failure %d" % status)
        challenge = acfg.get("challenge")
        if challenge:
            text = challenge if isinstance(challenge, str) else jdump(challenge)
            wanted = requested_claims(text).get("acrs") or []
            have = claims.get("acrs") or []
            if not wanted or not all(a in have for a in wanted):
                b64 = base64.b64encode(text.encode()).decode("ascii")
                self.arm_error(401, "InvalidAuthenticationToken",
                               "The access token does not satisfy the claims required by policy.",
                               {"WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.'
                                'microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", '
                                'claims="%s"' % b64})
        if acfg.get("malformed"):
            raise Reply(200, '{"value":[{"actions":["*"],"notActions":[],"dataAc')
        oid = str(claims.get("oid") or "").lower()
        upn = str(claims.get("upn") or claims.get("unique_name") or "").lower()
        roles = next((v for k, v in (acfg.get("roles") or {}).items() if k.lower() in (oid, upn)), None)
        if not roles:
            self.arm_error(403, "AuthorizationFailed",
                           "The client '%s' with object id '%s' does not have authorization to perform action "
                           "'Microsoft.Authorization/permissions/read' over scope '%s' or the scope is invalid. "
                           "If access was recently granted, please refresh your credentials." % (upn, oid, scope))
        entries = [arm_role_permission(r) for r in roles]
        size = int(acfg.get("page_size") or len(entries))
        skip = self.query.get("$skiptoken", "0")
        if not skip.isdigit() or int(skip) % size or int(skip) >= len(entries):
            self.arm_error(400, "InvalidSkipToken", "The skip token is not valid.")
        start = int(skip)
        body = {"value": entries[start:start + size]}
        if start + size < len(entries):
            base = acfg.get("next_link_base") or st.authority
            body["nextLink"] = "%s%s%s?api-version=%s&$skiptoken=%d" % (
                base, scope, ARM_PERMISSIONS_SUFFIX_CASED, self.query["api-version"], start + size)
        self.json_reply(body)

    # --- managed identity (plain HTTP) ------------------------------------

    def route_http(self, method):
        p = self.url_path
        if p in ("/metadata/identity/oauth2/token", "/metadata/identity/oauth2/token/"):
            self.msi("imds", method)
        if p == "/msi/token":
            self.msi("azureml", method)
        if p == "/appservice/token":
            self.msi("appservice", method)
        if p == "/arc/metadata/identity/oauth2/token":
            self.msi("arc", method)

    def msi_error(self, status, error, desc, headers=None):
        self.json_reply({"error": error, "error_description": desc}, status, headers)

    def msi(self, source, method):
        st = self.server.state
        self.begin(source)
        with st.lock:
            mcfg = dict(st.config["msi"])
        if mcfg.get("delay"):
            time.sleep(float(mcfg["delay"]))
        if method != "GET":
            raise Reply(405, "Method Not Allowed", "text/plain", {"Allow": "GET"})
        q = self.query
        h = self.headers
        if source in ("imds", "arc"):
            if h.get("X-Forwarded-For") is not None:
                self.msi_error(400, "invalid_request", "Requests with an X-Forwarded-For header are not allowed")
            if h.get("Metadata") != "true":
                self.msi_error(400, "bad_request_102", "Required metadata header not specified")
        if source == "azureml" and not secrets.compare_digest((h.get("secret") or "").encode(), st.msi_secret.encode()):
            self.msi_error(401, "invalid_request", "The secret header is missing or invalid")
        if source == "appservice" and not secrets.compare_digest(
                (h.get("X-IDENTITY-HEADER") or "").encode(), st.identity_header.encode()):
            raise Reply(401, jdump({"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or invalid",
                                    "correlationId": str(uuid.uuid4())}))
        if source == "arc":
            auth = h.get("Authorization") or ""
            key = auth[6:] if auth.startswith("Basic ") else None
            with st.lock:
                ok = key is not None and key in st.arc_keys
            if not ok:
                os.makedirs(st.arc_dir, mode=0o700, exist_ok=True)
                secret = secrets.token_hex(32)
                path = os.path.join(st.arc_dir, "%s.key" % uuid.uuid4().hex)
                write_atomic(path, secret, 0o600)
                with st.lock:
                    st.arc_keys.add(secret)
                raise Reply(401, jdump({"error": "unauthorized", "error_description": "Basic auth required"}),
                            headers={"WWW-Authenticate": "Basic realm=%s" % path})
        versions = {"imds": ("2018-02-01", "2019-08-01"), "azureml": ("2017-09-01",),
                    "appservice": ("2019-08-01",), "arc": ("2019-11-01", "2020-06-01")}[source]
        if "api-version" not in q:
            self.msi_error(400, "invalid_request", "Required query variable 'api-version' is missing")
        if q["api-version"] not in versions:
            self.msi_error(400, "invalid_request", "Invalid api-version '%s'" % q["api-version"])
        resource = q.get("resource")
        if not resource:
            self.msi_error(400, "invalid_request", "Required audience parameter not specified")
        # Scenario failures come after request validation, as a real service would.
        with st.lock:
            fail = mcfg.get("fail")
            if fail:
                n = mcfg.get("fail_count")
                if n is None or st.msi_failures < int(n):
                    st.msi_failures += 1
                else:
                    fail = None
        if fail:
            hdr = {"Retry-After": str(mcfg["retry_after"])} if mcfg.get("retry_after") is not None else {}
            fail = int(fail)
            self.msi_error(fail, "temporarily_unavailable" if fail >= 500 else "throttled" if fail == 429 else
                           "invalid_request", "Fake scenario failure %d" % fail, hdr)
        if mcfg.get("malformed"):
            raise Reply(200, '{"access_token":"eyJ0eXAi", "expires_')
        ident = self.pick_identity(source, q, mcfg)
        with st.lock:
            tok, now, _ = st.app_token(ident["client_id"], ident["object_id"], resource,
                                       {"xms_mirid": ident["mi_res_id"], "appidacr": "2"})
        lt = int(mcfg.get("expires_in") or 86399)
        exp = now + lt
        fmt = mcfg.get("expires_on_format") or ("date" if source == "azureml" else "epoch")
        expires_on = (datetime.datetime.fromtimestamp(exp, datetime.timezone.utc).strftime("%m/%d/%Y %H:%M:%S +00:00")
                      if fmt == "date" else str(exp))
        if source in ("imds", "arc"):
            body = {"access_token": tok, "refresh_token": "", "expires_in": str(lt), "expires_on": expires_on,
                    "not_before": str(now), "resource": resource, "token_type": "Bearer"}
        else:
            body = {"access_token": tok, "expires_on": expires_on, "resource": resource,
                    "token_type": "Bearer", "client_id": ident["client_id"]}
        body.update(mcfg.get("set") or {})
        for k in mcfg.get("drop") or []:
            body.pop(k, None)
        self.json_reply(body)

    def pick_identity(self, source, q, mcfg):
        names = {"imds": (("client_id", "client_id"), ("object_id", "object_id"), ("msi_res_id", "mi_res_id")),
                 "azureml": (("clientid", "client_id"), ("client_id", "client_id")),
                 "appservice": (("client_id", "client_id"), ("principal_id", "object_id"),
                                ("object_id", "object_id"), ("mi_res_id", "mi_res_id")),
                 "arc": ()}[source]
        asked = [(field, q[param]) for param, field in names if q.get(param)]
        if source == "arc" and any(k in q for k in ("client_id", "object_id", "msi_res_id", "mi_res_id")):
            self.msi_error(400, "invalid_request", "User assigned identities are not supported on Azure Arc")
        if len(asked) > 1:
            self.msi_error(400, "invalid_request", "Only one of client_id, object_id, msi_res_id may be given")
        identities = [SYSTEM_MI, USER_MI]
        for cid in mcfg.get("known_client_ids") or []:
            identities.append({"client_id": cid, "object_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "fake-mi:" + cid)),
                               "mi_res_id": SUB + "/Microsoft.ManagedIdentity/userAssignedIdentities/uai-" + cid[:8]})
        ident = SYSTEM_MI
        if asked:
            field, value = asked[0]
            ident = next((i for i in identities if i[field].lower() == value.lower()), None)
        if mcfg.get("identity_not_found") or ident is None:
            if source == "appservice":
                raise Reply(400, jdump({"statusCode": 400, "message": "Unable to load the proper Managed Identity.",
                                        "correlationId": str(uuid.uuid4())}))
            self.msi_error(400, "invalid_request", "Identity not found")
        return ident


def entry_ts():
    return utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, state, ssl_ctx, logfile):
        self.state, self.ssl_ctx, self.tls, self.logfile = state, ssl_ctx, ssl_ctx is not None, logfile
        super().__init__(("127.0.0.1", 0), Handler)

    def server_bind(self):
        # Skip HTTPServer's getfqdn(): a reverse DNS lookup can stall start-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's own thread, not in accept().
        request.settimeout(30)
        # Headers and body go out as separate writes: without this, Nagle
        # holds the second until the client's delayed ACK (40 ms), a stall
        # Entra's front ends do not have.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_ctx is None:
            return super().finish_request(request, client_address)
        try:
            conn = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return None
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.close()
            except OSError:
                pass
        return None

    def handle_error(self, request, client_address):
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Microsoft Entra ID + managed identity endpoints")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--tenant-id", default=DEFAULT_TENANT_ID)
    ap.add_argument("--tenant-domain", default=DEFAULT_DOMAIN)
    ap.add_argument("--arc-key-dir")
    args = ap.parse_args(argv)
    if not is_guid(args.tenant_id):
        ap.error("--tenant-id must be a GUID")
    args.dir = os.path.abspath(args.dir)
    os.makedirs(args.dir, exist_ok=True)
    if args.arc_key_dir:
        args.arc_key_dir = os.path.abspath(args.arc_key_dir)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    logfile = open(os.path.join(args.dir, "fake.log"), "a", encoding="utf-8")
    ca_file, ctx = make_tls(args.dir)
    state = State(args)
    https = Server(state, ctx, logfile)
    plain = Server(state, None, logfile)
    state.https_port, state.http_port = https.server_port, plain.server_port
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
               for s in (https, plain)]
    for t in threads:
        t.start()
    info = {"https_port": state.https_port, "http_port": state.http_port, "pid": os.getpid(),
            "tenant_id": state.tenant_id, "tenant_domain": state.domain, "ca_file": ca_file,
            "authority": state.authority, "msi_secret": state.msi_secret,
            "identity_header": state.identity_header,
            "client_id": PUBLIC_CLIENT_ID, "confidential_client_id": CONFIDENTIAL_CLIENT_ID,
            "client_secret": CONFIDENTIAL_CLIENT_SECRET, "arc_key_dir": state.arc_dir,
            "signing_key": os.path.join(args.dir, "signing.key")}
    write_atomic(os.path.join(args.dir, "fake.json"), jdump(info) + "\n")
    logfile.write("%s started https=%d http=%d pid=%d\n" % (entry_ts(), state.https_port, state.http_port,
                                                            os.getpid()))
    logfile.flush()
    while not stop.wait(0.5):
        pass
    for s in (https, plain):
        s.shutdown()
        s.server_close()
    logfile.write("%s stopped\n" % entry_ts())
    logfile.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
