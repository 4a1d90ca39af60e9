#!/usr/bin/python3
"""lib/msi.c over the real http layer against tests/fake/fake_entra.py:
each managed-identity source, failure scenarios, and the shared cache with
concurrent processes (one request for 50 cold gets)."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

SRCDIR = os.environ.get("ENTRA_SRCDIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILDDIR = os.environ.get("ENTRA_BUILDDIR", SRCDIR)
sys.path.insert(0, os.path.join(SRCDIR, "tests"))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "fake"))
from taplib import run, skip, test  # noqa: E402

DRIVER = os.path.join(BUILDDIR, "tests", "unit", "msi_get")
USER_MI = "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"  # known to the fake
UNKNOWN = "00000000-1111-4222-8333-444444444444"
MI_VARS = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
           "MSI_ENDPOINT", "MSI_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_POD_IDENTITY_AUTHORITY_HOST",
           "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY")


class Ctx:
    pass


def setup():
    try:
        from fakectl import Fake
    except ImportError:
        skip("tests/fake/fakectl.py is not in this tree")
    if not os.access(DRIVER, os.X_OK):
        skip("msi_get was not built")
    c = Ctx()
    c.tmp = tempfile.mkdtemp(prefix="msi_integration.")
    c.arc_dir = os.path.join(c.tmp, "arc-tokens")
    c.fake = Fake.start(os.path.join(c.tmp, "fake"), "--arc-key-dir", c.arc_dir)
    c.base = "http://127.0.0.1:%d" % c.fake.http_port
    c.cache_n = 0
    return c


def teardown(c):
    if c is not None:
        c.fake.stop()
        shutil.rmtree(c.tmp, ignore_errors=True)


def env_for(c, source):
    env = {k: v for k, v in os.environ.items() if k not in MI_VARS}
    if source == "imds":
        env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = c.base
    elif source == "azureml":
        env["MSI_ENDPOINT"] = c.base + "/msi/token"
        env["MSI_SECRET"] = c.fake.msi_secret
    elif source == "appservice":
        env["IDENTITY_ENDPOINT"] = c.base + "/appservice/token"
        env["IDENTITY_HEADER"] = c.fake.identity_header
    elif source == "arc":
        env["IDENTITY_ENDPOINT"] = c.base + "/arc/metadata/identity/oauth2/token"
        env["IMDS_ENDPOINT"] = c.base
    return env


def get(c, source, *args, check=True):
    p = subprocess.run([DRIVER, "--arc-dir", c.arc_dir] + list(args), env=env_for(c, source),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    out = p.stdout.strip()
    if check:
        assert p.returncode == 0, (out, p.stderr)
    return p.returncode, out, p.stderr


def fields(out):
    return dict(kv.split("=", 1) for kv in out.split()[1:] if "=" in kv)


def reset(c, **msi):
    c.fake.control("reset")
    if msi:
        c.fake.control("configure", {"msi": msi})


def count(c, endpoint):
    return c.fake.requests()["counts"].get(endpoint, 0)


def fresh_cache(c):
    c.cache_n += 1
    d = os.path.join(c.tmp, "cache%d" % c.cache_n)
    os.mkdir(d, 0o700)
    return d


@test
def imds_system_assigned(c):
    reset(c)
    rc, out, _ = get(c, "imds")
    f = fields(out)
    assert f["source"] == "imds" and f["from_cache"] == "0", out
    assert int(f["expires_on"]) > time.time() + 80000, out
    assert count(c, "imds") == 1


@test
def imds_user_assigned_and_unknown(c):
    reset(c)
    get(c, "imds", "--client-id", USER_MI)
    rc, out, err = get(c, "imds", "--client-id", UNKNOWN, check=False)
    assert rc == 1 and ("client_id %s is not assigned to this VM" % UNKNOWN) in out, out
    assert count(c, "imds") == 2


@test
def imds_identity_not_found(c):
    reset(c, identity_not_found=True)
    rc, out, err = get(c, "imds", check=False)
    assert rc == 1 and "no managed identity is assigned to this VM" in out, out
    assert "no managed identity is assigned" in err  # logged too
    assert count(c, "imds") == 1


@test
def azureml_date_string_expiry(c):
    reset(c)
    rc, out, _ = get(c, "azureml", "--client-id", USER_MI)
    f = fields(out)
    assert f["source"] == "azureml", out
    assert abs(int(f["expires_on"]) - (time.time() + 86399)) < 120, out


@test
def appservice(c):
    reset(c)
    rc, out, _ = get(c, "appservice", "--resource", "https://ml.azure.com/.default")
    assert fields(out)["source"] == "appservice", out
    assert count(c, "appservice") == 1


@test
def appservice_identity_not_found(c):
    reset(c, identity_not_found=True)
    rc, out, _ = get(c, "appservice", check=False)
    assert rc == 1 and "no managed identity is assigned to this host" in out, out


@test
def arc_challenge(c):
    reset(c)
    rc, out, _ = get(c, "arc")
    assert fields(out)["source"] == "arc", out
    assert count(c, "arc") == 2  # challenge + answer


@test
def arc_key_outside_the_directory_refused(c):
    reset(c)
    other = os.path.join(c.tmp, "other-dir")
    os.makedirs(other, exist_ok=True)
    p = subprocess.run([DRIVER, "--arc-dir", other], env=env_for(c, "arc"), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 1 and "outside" in p.stdout, p.stdout
    assert count(c, "arc") == 1


@test
def retries_5xx_then_success(c):
    reset(c, fail=503, fail_count=2)
    t0 = time.monotonic()
    rc, out, err = get(c, "imds")
    assert count(c, "imds") == 3, err
    assert time.monotonic() - t0 >= 1.4  # backoff waits of >= 0.5 s and >= 1 s


@test
def retry_after_honoured(c):
    reset(c, fail=429, fail_count=1, retry_after=2)
    t0 = time.monotonic()
    get(c, "imds")
    assert time.monotonic() - t0 >= 1.9
    assert count(c, "imds") == 2


@test
def bounded_total_time(c):
    reset(c, fail=500)
    t0 = time.monotonic()
    rc, out, _ = get(c, "imds", "--total-ms", "3000", check=False)
    took = time.monotonic() - t0
    assert rc == 1 and "gave up" in out and "HTTP 500" in out, out
    assert took < 3.5, took
    assert 2 <= count(c, "imds") <= 3


@test
def final_4xx_not_retried(c):
    reset(c, fail=403)
    rc, out, _ = get(c, "imds", check=False)
    assert rc == 1 and "HTTP 403" in out, out
    assert count(c, "imds") == 1


@test
def malformed_answer(c):
    reset(c, malformed=True)
    rc, out, _ = get(c, "imds", check=False)
    assert rc == 1 and "not a JSON object" in out, out
    assert count(c, "imds") == 1


@test
def wrong_secret_refused(c):
    reset(c)
    env = env_for(c, "azureml")
    env["MSI_SECRET"] = "wrong"
    p = subprocess.run([DRIVER], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 1 and "HTTP 401" in p.stdout, p.stdout
    assert count(c, "azureml") == 1


@test
def cache_50_concurrent_cold(c):
    reset(c, delay=0.2)
    cache = fresh_cache(c)
    procs = [subprocess.Popen([DRIVER, "--cache-dir", cache], env=env_for(c, "imds"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(50)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[:3]
    cached = sum(1 for o, _ in outs if "from_cache=1" in o)
    n = count(c, "imds")
    print("# 50 concurrent cold gets through the fake: %d request(s), %d served from the cache" % (n, cached))
    assert n == 1, n
    assert cached == 49
    assert len({fields(o)["expires_on"] for o, _ in outs}) == 1


@test
def cache_warm_timing(c):
    reset(c)
    cache = fresh_cache(c)
    get(c, "imds", "--cache-dir", cache)
    rc, out, _ = get(c, "imds", "--cache-dir", cache, "--count", "1000")
    print("# warm-cache get through the real stack: %s us" % fields(out)["us_per_get"])
    assert count(c, "imds") == 1


@test
def cache_short_token_refetched(c):
    # A token living under 5 minutes is due for refresh at once.
    reset(c, expires_in=290)
    cache = fresh_cache(c)
    get(c, "imds", "--cache-dir", cache)
    rc, out, _ = get(c, "imds", "--cache-dir", cache)
    assert fields(out)["from_cache"] == "0", out
    assert count(c, "imds") == 2


run(setup, teardown)
