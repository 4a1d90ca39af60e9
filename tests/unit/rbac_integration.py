#!/usr/bin/python3
"""lib/rbac.c over the real http layer against tests/fake/fake_entra.py's ARM
permissions endpoint: real tokens from the fake's device flow, each built-in
role, custom roles, pagination, a nextLink to another host, the 401 claims
challenge (and its satisfaction after a step-up login), 403, 500, malformed
answers, the decision cache, and the ARM token's amr/acrs checks."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

SRCDIR = os.environ.get("ENTRA_SRCDIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILDDIR = os.environ.get("ENTRA_BUILDDIR", SRCDIR)
sys.path.insert(0, os.path.join(SRCDIR, "tests"))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "fake"))
from taplib import run, skip, test  # noqa: E402

DRIVER = os.path.join(BUILDDIR, "tests", "unit", "rbac_check")
SUB = "00000000-0000-0000-0000-000000000000"
SCOPE = "/subscriptions/%s/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws" % SUB
ARM_SCOPES = "https://management.azure.com/.default openid profile offline_access"
PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


class Ctx:
    pass


def setup():
    try:
        from fakectl import Fake
    except ImportError:
        skip("tests/fake/fakectl.py is not in this tree")
    if not os.access(DRIVER, os.X_OK):
        skip("rbac_check was not built")
    c = Ctx()
    c.tmp = tempfile.mkdtemp(prefix="rbac_integration.")
    os.chmod(c.tmp, 0o700)
    c.fake = Fake.start(os.path.join(c.tmp, "fake"))
    c.n = 0
    return c


def teardown(c):
    if c is not None:
        c.fake.stop()
        shutil.rmtree(c.tmp, ignore_errors=True)


def fresh(c, **cfg):
    c.fake.control("reset")
    if cfg:
        c.fake.control("configure", cfg)


def login(c, upn, claims_param=None, **claims):
    """A real ARM access token for upn from the fake's device flow."""
    f = c.fake
    form = {"client_id": f.client_id, "scope": ARM_SCOPES}
    if claims_param:
        form["claims"] = claims_param
    st, _, dc = f.json("POST", "/%s/oauth2/v2.0/devicecode" % f.tenant_id, form=form)
    assert st == 200, dc
    approved = dict(claims, preferred_username=upn)
    r = f.control("approve", {"user_code": dc["user_code"], "claims": approved})
    st, _, tok = f.json("POST", "/%s/oauth2/v2.0/token" % f.tenant_id, form={
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": f.client_id,
        "device_code": dc["device_code"]})
    assert st == 200, tok
    c.n += 1
    path = os.path.join(c.tmp, "token.%d" % c.n)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(tok["access_token"])
    return path, r["claims"]["oid"], tok["access_token"]


def check(c, token_file, *args, arm=None, scope=SCOPE):
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    cmd = [DRIVER, "--arm", arm or c.fake.authority, "--scope", scope, "--token-file", token_file,
           "--ca-file", c.fake.ca_file] + list(args)
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    return p.returncode, p.stdout.strip(), p.stderr


def fields(out):
    head, _, rest = out.partition(" reason=")
    d = dict(kv.split("=", 1) for kv in head.split()[1:])
    d["kind"] = head.split()[0] if head else ""
    reason, _, claims = rest.partition(" claims=")
    d["reason"] = reason
    if claims:
        d["claims"] = claims
    return d


def arm_count(c):
    return c.fake.requests()["counts"]["arm"]


def assign(c, who, roles, **more):
    c.fake.control("configure", {"arm": dict({"roles": {who: roles}}, **more)})


@test
def builtin_roles_decide_login_and_admin(c):
    fresh(c)
    cases = [("Virtual Machine User Login", "1", "0"), ("Virtual Machine Administrator Login", "1", "1"),
             ("Owner", "0", "0"), ("Contributor", "0", "0"), ("Reader", "0", "0")]
    for i, (role, want_login, want_admin) in enumerate(cases):
        upn = "user%d@contoso.com" % i
        tf, _, _ = login(c, upn)
        assign(c, upn, [role])
        rc, out, err = check(c, tf)
        f = fields(out)
        assert rc == 0 and f["kind"] == "ok", (role, out, err)
        assert (f["login"], f["admin"]) == (want_login, want_admin), (role, out)
        assert f["entries"] == "1", out
        if want_login == "1":
            assert "Microsoft.Compute/virtualMachines/login/action" in f["reason"], out
        else:
            assert "no role grants a login action" in f["reason"], out
    # each call was one ARM request, with the person's token and the api-version
    log = [e for e in c.fake.requests()["log"] if e["endpoint"] == "arm"]
    assert len(log) == len(cases) and all(e["status"] == 200 for e in log), log
    assert all(e["query"] == {"api-version": "2022-04-01"} for e in log), log
    assert all(e["path"] == SCOPE + "/providers/Microsoft.Authorization/permissions" for e in log), log


@test
def roles_combine_and_custom_roles(c):
    fresh(c)
    tf, oid, _ = login(c, "dana@contoso.com")
    # keyed by object id; Reader + a custom role with a wildcard and a notDataAction
    assign(c, oid, ["Reader", {"dataActions": ["Microsoft.Compute/*"],
                               "notDataActions": ["Microsoft.Compute/virtualMachines/loginAsAdmin/action"]}])
    f = fields(check(c, tf)[1])
    assert (f["login"], f["admin"]) == ("1", "0") and "Microsoft.Compute/*" in f["reason"], f
    # a notDataAction in one entry does not subtract from another
    assign(c, oid, [{"dataActions": ["*"], "notDataActions": ["*"]}, "Virtual Machine Administrator Login"])
    f = fields(check(c, tf)[1])
    assert (f["login"], f["admin"]) == ("1", "1") and "entry 1" in f["reason"], f
    # a conditional (ABAC) entry grants nothing here
    assign(c, oid, [{"dataActions": ["Microsoft.Compute/virtualMachines/login/action"],
                     "condition": "@Resource[x] StringEquals 'y'", "conditionVersion": "2.0"}])
    f = fields(check(c, tf)[1])
    assert f["login"] == "0", f
    # configured HybridCompute actions and a control-plane action
    assign(c, oid, ["Virtual Machine User Login"])
    f = fields(check(c, tf, "--login", "Microsoft.HybridCompute/machines/login/action")[1])
    assert f["login"] == "1" and "HybridCompute" in f["reason"], f
    f = fields(check(c, tf, "--login", "action:Microsoft.Compute/virtualMachines/instanceView/read")[1])
    assert f["login"] == "1" and "*/read" in f["reason"], f


@test
def pagination_follows_next_link(c):
    fresh(c)
    tf, _, _ = login(c, "erin@contoso.com")
    assign(c, "erin@contoso.com", ["Reader", "Owner", "Contributor", "Virtual Machine User Login",
                                   {"dataActions": ["Microsoft.Compute/virtualMachines/loginAsAdmin/action"]}],
           page_size=2)
    before = arm_count(c)
    rc, out, _ = check(c, tf)
    f = fields(out)
    assert rc == 0 and (f["login"], f["admin"]) == ("1", "1") and f["entries"] == "5", out
    assert arm_count(c) - before == 3  # pages of 2, 2, 1
    log = [e for e in c.fake.requests()["log"] if e["endpoint"] == "arm"]
    assert [e["query"].get("$skiptoken") for e in log[-3:]] == [None, "2", "4"], log
    # the bound on pages
    assign(c, "erin@contoso.com", ["Reader"] * 5, page_size=1)
    rc, out, _ = check(c, tf, "--max-pages", "3")
    f = fields(out)
    assert rc == 1 and f["result"] == "malformed_answer" and "more than 3 pages" in f["reason"], out


@test
def next_link_to_another_host_is_refused(c):
    fresh(c)
    tf, _, token = login(c, "frank@contoso.com")
    for base in ("https://localhost:%d" % c.fake.https_port, "https://127.0.0.1:1",
                 "http://127.0.0.1:%d" % c.fake.https_port):
        assign(c, "frank@contoso.com", ["Virtual Machine User Login", "Reader"], page_size=1,
               next_link_base=base)
        before = arm_count(c)
        rc, out, _ = check(c, tf)
        f = fields(out)
        assert rc == 1 and f["result"] == "malformed_answer" and "nextLink" in f["reason"], (base, out)
        assert arm_count(c) - before == 1, base  # the token never went to the other host
        assert token not in out


@test
def claims_challenge_is_decoded_then_satisfied(c):
    fresh(c)
    tf, _, _ = login(c, "gina@contoso.com")
    challenge = {"access_token": {"acrs": {"essential": True, "value": "c2"}}}
    assign(c, "gina@contoso.com", ["Virtual Machine Administrator Login"], challenge=challenge)
    rc, out, _ = check(c, tf)
    f = fields(out)
    assert rc == 1 and f["result"] == "claims_challenge", out
    assert json.loads(f["claims"]) == challenge, out
    # a new login with those claims satisfies it (the fake issues acrs c2)
    tf2, _, _ = login(c, "gina@contoso.com", claims_param=f["claims"])
    rc, out, _ = check(c, tf2)
    f = fields(out)
    assert rc == 0 and (f["login"], f["admin"]) == ("1", "1"), out


@test
def arm_failures_fail_closed(c):
    fresh(c)
    tf, _, token = login(c, "hank@contoso.com")
    # no role assignment at all: 403
    rc, out, _ = check(c, tf)
    f = fields(out)
    assert rc == 1 and f["result"] == "forbidden" and "AuthorizationFailed" in f["reason"], out
    assign(c, "hank@contoso.com", ["Virtual Machine Administrator Login"])
    for arm_cfg, result, why in ((
            {"fail": 500}, "unavailable", "HTTP 500 InternalServerError"),
            ({"fail": 429}, "unavailable", "HTTP 429"),
            ({"fail": 404}, "unavailable", "HTTP 404"),
            ({"malformed": True}, "malformed_answer", "unparsable")):
        c.fake.control("configure", {"arm": arm_cfg})
        rc, out, _ = check(c, tf)
        f = fields(out)
        assert rc == 1 and f["result"] == result and why in f["reason"], (arm_cfg, out)
        c.fake.control("configure", {"arm": {k: None for k in arm_cfg}})
    # a proxy-style HTML failure through the generic scenario
    c.fake.control("configure", {"fail": {"arm": 502}})
    rc, out, _ = check(c, tf)
    assert rc == 1 and fields(out)["result"] == "unavailable", out
    c.fake.control("configure", {"fail": {"arm": None}})
    # nothing listening
    rc, out, _ = check(c, tf, arm="https://127.0.0.1:1")
    assert rc == 1 and fields(out)["result"] == "unavailable", out
    # a token ARM does not accept: 401 without a claims challenge
    bad = os.path.join(c.tmp, "bad-token")
    with open(bad, "w") as fh:
        fh.write(token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8))
    rc, out, _ = check(c, bad)
    f = fields(out)
    assert rc == 1 and f["result"] == "unauthorized" and "InvalidAuthenticationToken" in f["reason"], out
    # a bad scope never reaches ARM
    before = arm_count(c)
    rc, out, _ = check(c, tf, scope="/subscriptions/%s/../x" % SUB)
    assert rc == 1 and fields(out)["result"] == "invalid_request" and arm_count(c) == before, out
    assert token not in out
    # it works again once ARM is healthy
    rc, out, _ = check(c, tf)
    assert rc == 0 and fields(out)["login"] == "1", out


@test
def decision_cache_skips_arm(c):
    fresh(c)
    tf, oid, _ = login(c, "ivy@contoso.com")
    assign(c, oid, ["Virtual Machine Administrator Login"])
    cache = os.path.join(c.tmp, "cache")
    args = ("--cache-dir", cache, "--oid", oid, "--ttl", "60")
    before = arm_count(c)
    f = fields(check(c, tf, *args)[1])
    assert f["cached"] == "0" and f["admin"] == "1", f
    f = fields(check(c, tf, *args)[1])
    assert f["cached"] == "1" and (f["login"], f["admin"]) == ("1", "1"), f
    assert arm_count(c) - before == 1
    st = os.stat(os.path.join(cache, "rbac"))
    assert st.st_mode & 0o777 == 0o700
    st = os.stat(os.path.join(cache, "rbac", oid.lower() + ".json"))
    assert st.st_mode & 0o777 == 0o600
    # another configuration (admin action list) does not use the entry
    f = fields(check(c, tf, *args, "--admin", "Microsoft.HybridCompute/machines/loginAsAdmin/action")[1])
    assert f["cached"] == "0", f
    assert arm_count(c) - before == 2


@test
def token_claims_mfa_and_acrs(c):
    fresh(c)
    jwks = "%s/%s/discovery/v2.0/keys" % (c.fake.authority, c.fake.tenant_id)
    tf, oid, _ = login(c, "jack@contoso.com")
    assign(c, oid, ["Virtual Machine User Login"])
    base = ("--jwks-url", jwks, "--tenant", c.fake.tenant_id, "--expect-oid", oid)
    rc, out, _ = check(c, tf, *base, "--require-mfa")
    assert rc == 0 and fields(out)["login"] == "1", out
    rc, out, _ = check(c, tf, *base, "--acrs", "c2")
    assert rc == 3 and "authentication context \"c2\"" in out, out
    # a person who signed in without MFA
    tf2, oid2, _ = login(c, "kim@contoso.com", amr=["pwd"])
    rc, out, _ = check(c, tf2, "--jwks-url", jwks, "--tenant", c.fake.tenant_id, "--require-mfa")
    assert rc == 3 and "multi-factor" in out, out
    # step-up: acrs asked for and issued
    tf3, _, _ = login(c, "jack@contoso.com", claims_param=json.dumps(
        {"access_token": {"acrs": {"essential": True, "value": "c2"}}}))
    rc, out, _ = check(c, tf3, *base, "--require-mfa", "--acrs", "c2")
    assert rc == 0, out
    # another person's token
    rc, out, _ = check(c, tf2, *base)
    assert rc == 3 and "another person" in out, out
    # a token signed with a key the tenant does not publish
    c.fake.control("configure", {"sign": "wrong_key"})
    tf4, _, _ = login(c, "jack@contoso.com")
    c.fake.control("configure", {"sign": "good"})
    rc, out, _ = check(c, tf4, *base)
    assert rc == 3 and "jwt=bad signature" in out, out
    rc, out, _ = check(c, tf4)
    assert rc == 1 and fields(out)["result"] == "unauthorized", out  # ARM refuses it too


if __name__ == "__main__":
    run(setup, teardown)
