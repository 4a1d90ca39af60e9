#!/usr/bin/python3
"""entra-tokend against the fake Entra: registration, the App Service
protocol, the uid check, single-flight refresh, rotation, bounds on bad and
slow clients, forgetting sessions, restart, socket activation, entra-token.
Runs as root (clients run as other uids through setpriv)."""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.environ.get("ENTRA_SRCDIR", "."), "tests"))
from taplib import run, skip, test  # noqa: E402
from tokendlib import (ARM, TOKEN_TOOL, UID_A, UID_B, UID_C, Rig, body_of, fingerprint,  # noqa: E402
                       is_root, query, status_of)

MGMT = "https://management.azure.com"
ML = "https://ml.azure.com"


def setup():
    if not is_root():
        skip("needs root: sessions and clients run as other uids")
    if not os.path.exists("/usr/bin/setpriv"):
        skip("setpriv (util-linux) not installed")
    rig = Rig()
    rig.start("--client-timeout", "1500", "--max-connections", "64", "--grace", "3600")
    rig.alice = rig.make_session(UID_A)
    return rig


def teardown(rig):
    if rig is not None:
        rig.cleanup()


def token_count(rig):
    return rig.fake.requests()["counts"]["token"]


@test
def registration_socket_is_root_only(rig):
    st = os.stat(rig.sock)
    assert st.st_uid == 0 and (st.st_mode & 0o777) == 0o600, oct(st.st_mode)
    probe = ("import json,socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
             "try:\n s.connect(sys.argv[1])\nexcept OSError as e:\n print('refused', e.errno); sys.exit(0)\n"
             "try:\n s.sendall(b'{\"op\":\"list\"}\\n')\nexcept OSError:\n pass\n"
             "print(s.recv(4096).decode())\n")
    r = rig.as_uid(UID_B, ["/usr/bin/python3", "-c", probe, rig.sock], {"PATH": "/usr/bin:/bin"})
    assert r.stdout.decode().startswith("refused 13"), r
    # Past the file mode, SO_PEERCRED still refuses a non-root peer.
    os.chmod(rig.sock, 0o666)
    try:
        r = rig.as_uid(UID_B, ["/usr/bin/python3", "-c", probe, rig.sock], {"PATH": "/usr/bin:/bin"})
    finally:
        os.chmod(rig.sock, 0o600)
    assert '"ok":false' in r.stdout.decode() and "permission denied" in r.stdout.decode(), r
    assert "root only" in rig.log_text()


@test
def register_list_unregister(rig):
    s = rig.make_session(UID_C)
    listed = rig.listed()
    assert listed[s["id"]]["uid"] == UID_C and listed[s["id"]]["identity_kind"] == "user", listed
    assert listed[s["id"]]["refresh_token_id"] == fingerprint(s["refresh_token"])
    assert rig.call({"op": "unregister", "session_id": s["id"]}) == {"ok": True, "found": True}
    assert rig.call({"op": "unregister", "session_id": s["id"]}) == {"ok": True, "found": False}
    assert s["id"] not in rig.listed()
    # A person's session needs its private store entry; bad fields are refused.
    s2 = rig.make_session(UID_C, register=False)
    os.unlink(os.path.join(rig.run_dir, "private", s2["id"]))
    ans = rig.register(s2)
    assert ans["ok"] is False and "refresh token" in ans["error"], ans
    s3 = dict(s2, secret="short")
    assert rig.register(s3)["ok"] is False
    s4 = rig.make_session(UID_C, register=False)
    assert rig.register(dict(s4, uid=UID_B))["ok"] is False   # the store says UID_C
    assert rig.register(dict(s4, user="bob@contoso.com"))["ok"] is False
    assert "for another user or uid" in rig.log_text()


@test
def default_resource_token(rig):
    before = token_count(rig)
    [r] = rig.get(UID_A, rig.alice["secret"], MGMT)
    assert r["status"] == 200, r
    b = r["body"]
    assert set(b) >= {"access_token", "expires_on", "resource", "token_type"}, b
    assert b["token_type"] == "Bearer" and b["resource"] == MGMT, b
    assert b["expires_on"].isdigit() and int(b["expires_on"]) > time.time() + 600, b
    assert b["claims"]["aud"] == "https://management.azure.com/", b["claims"]
    assert b["claims"]["upn"] == "alice@contoso.com", b["claims"]
    assert token_count(rig) == before + 1
    # The grant's new refresh token replaced the one from the store.
    assert rig.listed()[rig.alice["id"]]["refresh_token_id"] != fingerprint(rig.alice["refresh_token"])
    # From the cache: no second grant.
    [r] = rig.get(UID_A, rig.alice["secret"], MGMT)
    assert r["status"] == 200 and token_count(rig) == before + 1, r


@test
def other_resource_by_refresh_grant_and_rotation(rig):
    before = token_count(rig)
    fp0 = rig.listed()[rig.alice["id"]]["refresh_token_id"]
    [r] = rig.get(UID_A, rig.alice["secret"], ML)
    assert r["status"] == 200 and r["body"]["claims"]["aud"] == ML, r
    assert token_count(rig) == before + 1
    grant = [e for e in rig.fake.requests()["log"] if e["endpoint"] == "token"][-1]
    assert grant["form"]["grant_type"] == "refresh_token", grant
    assert grant["form"]["scope"] == ML + "/.default offline_access", grant
    assert grant["form"]["client_id"] == rig.fake.client_id
    # The rotated refresh token replaced the one taken from the store.
    fp1 = rig.listed()[rig.alice["id"]]["refresh_token_id"]
    assert fp1 != fp0, (fp0, fp1)
    # A scope as resource works too (azure-identity strips /.default first).
    [r] = rig.get(UID_A, rig.alice["secret"], "https://graph.microsoft.com")
    assert r["status"] == 200


@test
def concurrent_requests_make_one_refresh_grant(rig):
    rig.fake.control("configure", {"delay": {"token": 1.0}})
    try:
        before = token_count(rig)
        out = rig.get(UID_A, rig.alice["secret"], "https://storage.azure.com", n=30,
                      start_at=time.time() + 1.0)
    finally:
        rig.fake.control("configure", {"delay": None})
    assert len(out) == 30 and all(r["status"] == 200 for r in out), out
    assert {r["body"]["claims"]["aud"] for r in out} == {"https://storage.azure.com"}
    assert token_count(rig) == before + 1, token_count(rig) - before


@test
def wrong_or_missing_secret_is_401(rig):
    [r] = rig.get(UID_A, "0" * 64, MGMT)
    assert r["status"] == 401 and r["body"]["error"] == "unauthorized", r
    assert "Log in again" in r["body"]["message"], r
    [r] = rig.get(UID_A, None, MGMT)
    assert r["status"] == 401, r
    assert rig.alice["secret"] not in rig.log_text()


@test
def right_secret_from_another_uid_is_refused(rig):
    [r] = rig.get(UID_B, rig.alice["secret"], MGMT)
    assert r["status"] == 401, r
    # Root too: the secret is the session uid's alone.
    raw = rig.raw(("GET /oauth2/token?%s HTTP/1.1\r\nHost: x\r\nX-IDENTITY-HEADER: %s\r\n\r\n"
                   % (query(MGMT), rig.alice["secret"])).encode())
    assert status_of(raw) == 401, raw
    assert "token request from uid %d refused" % UID_B in rig.log_text()


@test
def malformed_requests(rig):
    cases = [
        (b"HELLO\r\n\r\n", 400),
        (b"GET /oauth2/token HTTP/1.1\nHost: x\n\n\r\n\r\n", 400),
        (b"GET /oauth2/token?resource=a%zz&api-version=2019-08-01 HTTP/1.1\r\n\r\n", 400),
        (b"GET /oauth2/token?resource=a&resource=b&api-version=2019-08-01 HTTP/1.1\r\n\r\n", 400),
        (b"GET /oauth2/token?" + query(MGMT).encode() + b" HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"GET /oauth2/token?" + query(MGMT).encode() + b" HTTP/1.1\r\nX-IDENTITY-HEADER: a\r\n"
         b"x-identity-header: b\r\n\r\n", 400),
        (b"GET /oauth2/token?resource=x HTTP/1.1\r\n\r\n", 400),
        (b"GET /oauth2/token?api-version=2019-08-01 HTTP/1.1\r\n\r\n", 400),
        (b"POST /oauth2/token?" + query(MGMT).encode() + b" HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"GET /other HTTP/1.1\r\n\r\n", 404),
        (b"GET /oauth2/token?" + query(MGMT).encode() + b" HTTP/1.1\r\nA: \x00\r\n\r\n", 400),
        (b"GET /oauth2/token?" + query(MGMT).encode() + b" HTTP/1.1\r\n\r\n", 401),
    ]
    for data, want in cases:
        raw = rig.raw(data)
        assert status_of(raw) == want, (data, raw)
        assert "error" in body_of(raw), raw
    # Closed before the head ends: nothing to answer, the daemon goes on.
    assert rig.raw(b"GET /oauth2/token HTT") == b""
    assert rig.proc.poll() is None


@test
def oversized_headers_are_refused(rig):
    data = b"GET /oauth2/token?" + query(MGMT).encode() + b" HTTP/1.1\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n"
    raw = rig.raw(data, close_write=False)
    assert status_of(raw) == 431, raw[:200]


@test
def slow_clients_are_bounded(rig):
    # A client that never finishes its request is cut off after the
    # client timeout (1.5 s here) ...
    slow = socket.create_connection(("127.0.0.1", rig.port))
    slow.sendall(b"GET /oauth2/token?")
    t0 = time.monotonic()
    # ... while others are served meanwhile.
    [r] = rig.get(UID_A, rig.alice["secret"], MGMT)
    assert r["status"] == 200 and time.monotonic() - t0 < 1.4, r
    slow.settimeout(5)
    out = b""
    while True:
        chunk = slow.recv(4096)
        if not chunk:
            break
        out += chunk
    slow.close()
    waited = time.monotonic() - t0
    assert status_of(out) == 408 and 1.0 < waited < 4.0, (out, waited)
    # Connections over --max-connections (64) are turned away at once.
    idle = [socket.create_connection(("127.0.0.1", rig.port)) for _ in range(70)]
    try:
        time.sleep(0.3)
        turned = 0
        for s in idle:
            s.settimeout(0.2)
            try:
                data = s.recv(4096)
                if data.startswith(b"HTTP/1.1 503"):
                    assert status_of(data) == 503 and body_of(data)["statusCode"] == 503, data
                    assert int(data.split(b"Content-Length: ")[1].split(b"\r\n")[0]) == \
                        len(data.split(b"\r\n\r\n", 1)[1]), data
                    turned += 1
            except socket.timeout:
                pass
        assert turned >= 6, turned
    finally:
        for s in idle:
            s.close()
    time.sleep(1.7)  # let the idle ones time out
    [r] = rig.get(UID_A, rig.alice["secret"], MGMT)
    assert r["status"] == 200, r


@test
def identity_selectors_are_refused_for_a_person(rig):
    [r] = rig.get(UID_A, rig.alice["secret"], MGMT,
                  extra_query="&client_id=7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f")
    assert r["status"] == 400 and "Managed Identity" in r["body"]["message"], r


@test
def entra_token_tool(rig):
    s = rig.alice
    env = rig.session_env(s)
    tokfile = os.path.join(s["dir"], "token")
    with open(tokfile) as fh:
        assert fh.read() == s["login_token"]
    r = rig.as_uid(UID_A, [TOKEN_TOOL], env)
    assert r.returncode == 0, r
    token = r.stdout.decode().strip()
    assert token.count(".") == 2
    with open(tokfile) as fh:
        assert fh.read() == token  # rewritten: the daemon's token for the default resource
    st = os.stat(tokfile)
    assert st.st_uid == UID_A and (st.st_mode & 0o777) == 0o600
    assert not [n for n in os.listdir(s["dir"]) if n not in ("token", "config.json")]
    r = rig.as_uid(UID_A, [TOKEN_TOOL, "--json", "--resource", ML + "/.default"], env)
    assert r.returncode == 0, r
    import json
    out = json.loads(r.stdout)
    assert set(out) >= {"accessToken", "expiresOn", "tokenType", "tenant"}, out
    assert out["tenant"] == rig.fake.tenant_id and out["tokenType"] == "Bearer", out
    with open(tokfile) as fh:
        assert fh.read() == token  # another resource leaves the file alone
    r = rig.as_uid(UID_A, [TOKEN_TOOL], {"PATH": "/usr/bin:/bin"})
    assert r.returncode == 3 and b"no token service" in r.stderr, r
    r = rig.as_uid(UID_A, [TOKEN_TOOL], dict(env, IDENTITY_ENDPOINT="http://10.1.2.3:80/oauth2/token"))
    assert r.returncode == 1 and b"loopback" in r.stderr, r
    r = rig.as_uid(UID_B, [TOKEN_TOOL], env)
    assert r.returncode == 4 and b"log in again" in r.stderr, r


@test
def expired_refresh_token_says_log_in_again(rig):
    s = rig.make_session(UID_C)
    rig.fake.control("configure", {"refresh_error": {"aadsts": 700082}})
    try:
        [r] = rig.get(UID_C, s["secret"], ML)
        assert r["status"] == 400 and r["body"]["error"] == "interaction_required", r
        assert r["body"]["error_codes"] == [700082], r
        assert rig.listed()[s["id"]]["needs_login"] is True
        r = rig.as_uid(UID_C, [TOKEN_TOOL, "--resource", "https://vault.azure.net"], rig.session_env(s))
        assert r.returncode == 4 and b"log in again" in r.stderr, r
    finally:
        rig.fake.control("configure", {"refresh_error": None})
    # The refresh token is dead for good: no more grants for this session.
    before = token_count(rig)
    [r] = rig.get(UID_C, s["secret"], "https://vault.azure.net")
    assert r["status"] == 400 and token_count(rig) == before, r
    rig.call({"op": "unregister", "session_id": s["id"]})


@test
def managed_identity_session(rig):
    s = rig.make_session(UID_B, user="svc-train", kind="managed-identity")
    before = rig.fake.requests()["counts"]["imds"]
    [r] = rig.get(UID_B, s["secret"], MGMT)
    assert r["status"] == 200, r
    assert r["body"]["claims"]["oid"] == "9d8c7b6a-5f4e-4d3c-8b2a-1e0f9a8b7c6d", r
    assert r["body"]["claims"]["aud"] == MGMT
    [r] = rig.get(UID_B, s["secret"], MGMT)
    assert r["status"] == 200
    assert rig.fake.requests()["counts"]["imds"] <= before + 1
    rig.call({"op": "unregister", "session_id": s["id"]})


@test
def entractl_status_reports_the_daemon(rig):
    s = rig.make_session(UID_B, user="svc-train", kind="managed-identity")
    kinds = [v["identity_kind"] for v in rig.listed().values()]
    people, managed = kinds.count("user"), kinds.count("managed-identity")
    assert managed >= 1 and people >= 1, kinds
    entractl = os.path.join(os.environ.get("ENTRA_BUILDDIR", "."), "tools", "entractl")
    p = subprocess.run([entractl, "--config", rig.conf, "status"], capture_output=True, text=True)
    want = "running: %d registered sessions (%d of people, %d of managed identities), tokens at 127.0.0.1:%d" % (
        people + managed, people, managed, rig.port)
    assert ("token service (%s):" % rig.sock) in p.stdout and want in p.stdout, p.stdout
    rig.call({"op": "unregister", "session_id": s["id"]})


@test
def closed_session_is_refused(rig):
    s = rig.make_session(UID_C)
    [r] = rig.get(UID_C, s["secret"], MGMT)
    assert r["status"] == 200, r
    assert rig.call({"op": "unregister", "session_id": s["id"]})["found"] is True
    [r] = rig.get(UID_C, s["secret"], MGMT)
    assert r["status"] == 401, r


@test
def sessions_without_processes_are_forgotten(rig):
    rig.stop()
    rig.start("--scan-interval", "1", "--grace", "1")
    try:
        lonely = rig.make_session(UID_C)
        busy = rig.make_session(UID_B)
        sleeper = subprocess.Popen(["setpriv", "--reuid=%d" % UID_B, "--regid=%d" % UID_B,
                                    "--clear-groups", "sleep", "30"])
        try:
            deadline = time.monotonic() + 8
            while lonely["id"] in rig.listed() and time.monotonic() < deadline:
                time.sleep(0.2)
            listed = rig.listed()
            assert lonely["id"] not in listed and busy["id"] in listed, listed
            assert "has no process left" in rig.log_text()
        finally:
            sleeper.kill()
            sleeper.wait()
    finally:
        rig.stop()
        rig.start("--client-timeout", "1500", "--max-connections", "64", "--grace", "3600")
        rig.alice = rig.make_session(UID_A)


@test
def restart_forgets_sessions(rig):
    s = rig.alice
    [r] = rig.get(UID_A, s["secret"], MGMT)
    assert r["status"] == 200
    rig.stop()
    assert not os.path.exists(rig.sock)
    rig.start("--client-timeout", "1500", "--grace", "3600")
    assert rig.listed() == {}
    [r] = rig.get(UID_A, s["secret"], MGMT)
    assert r["status"] == 401 and "Log in again" in r["body"]["message"], r
    r = rig.as_uid(UID_A, [TOKEN_TOOL], rig.session_env(s))
    assert r.returncode == 4, r
    # Registering again (a new login) works at once.
    assert rig.register(s) == {"ok": True}
    [r] = rig.get(UID_A, s["secret"], MGMT)
    assert r["status"] == 200, r


@test
def socket_activation(rig):
    rig.stop()
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = rig.sock + ".act"
    u.bind(path)
    os.chmod(path, 0o600)
    u.listen(8)
    t = socket.socket()
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("127.0.0.1", rig.port))
    t.listen(64)

    import fcntl
    from tokendlib import TOKEND
    tfd = fcntl.fcntl(t.fileno(), fcntl.F_DUPFD_CLOEXEC, 5)
    ufd = fcntl.fcntl(u.fileno(), fcntl.F_DUPFD_CLOEXEC, 5)
    # As systemd does: the sockets at fds 3 and 4, LISTEN_PID = the daemon.
    shim = ("import os,sys\nos.dup2(int(sys.argv[1]),3)\nos.dup2(int(sys.argv[2]),4)\n"
            "os.environ['LISTEN_PID']=str(os.getpid())\nos.environ['LISTEN_FDS']='2'\n"
            "os.execv(sys.argv[3],sys.argv[3:])\n")
    argv = ["/usr/bin/python3", "-c", shim, str(tfd), str(ufd), TOKEND, "--foreground", "--config", rig.conf]
    try:
        rig.proc = subprocess.Popen(argv, pass_fds=(tfd, ufd),
                                    stdout=open(rig.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                if rig.call({"op": "list"}, path=path)["ok"]:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert not os.path.exists(rig.sock), "the daemon made its own socket"
        s = rig.alice
        assert rig.call({"op": "register", "session_id": s["id"], "uid": s["uid"], "user": s["user"],
                         "identity_kind": "user", "secret": s["secret"]}, path=path) == {"ok": True}
        [r] = rig.get(UID_A, s["secret"], MGMT)
        assert r["status"] == 200, r
    finally:
        rig.stop()
        u.close()
        t.close()
        os.unlink(path)
        os.close(tfd)
        os.close(ufd)
    rig.start("--client-timeout", "1500", "--grace", "3600")


@test
def daemon_log_is_clean(rig):
    rig.stop()
    text = rig.log_text()
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer"):
        assert marker not in text, text[-4000:]
    # Never a secret in a log line.
    assert rig.alice["secret"] not in text and rig.alice["refresh_token"] not in text
    assert "session %s registered" % rig.alice["id"] in text
    rig.start("--grace", "3600")


if __name__ == "__main__":
    run(setup, teardown)
