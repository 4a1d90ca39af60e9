"""Shared rig for the token-service tests: the fake Entra, a config, an
entra-tokend process, sessions laid out as pam_entra lays them out (session
directory, private store) and registered over the Unix socket as the PAM
module registers them, and clients run as other uids (setpriv).

Needs root for everything that runs as another uid; tests skip otherwise.
"""
import base64
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("ENTRA_SRCDIR", os.path.dirname(os.path.dirname(HERE)))
BUILDDIR = os.environ.get("ENTRA_BUILDDIR", SRCDIR)
sys.path.insert(0, os.path.join(SRCDIR, "tests", "fake"))
from fakectl import Fake  # noqa: E402

PYTHON = "/usr/bin/python3"
TOKEND = os.path.join(BUILDDIR, "tools", "entra-tokend")
TOKEN_TOOL = os.path.join(BUILDDIR, "tools", "entra-token")
CLIENT = os.path.join(HERE, "tokend_client.py")
ARM = "https://management.azure.com/.default"
# uids with no passwd entry and (normally) no process: sessions and clients.
UID_A, UID_B, UID_C = 4242001, 4242002, 4242003


def is_root():
    return os.geteuid() == 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def claims_of(jwt):
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Rig:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tokend-test-")
        os.chmod(self.dir, 0o755)
        self.fake = Fake.start(os.path.join(self.dir, "fake"))
        self.run_dir = os.path.join(self.dir, "run")
        self.cache_dir = os.path.join(self.dir, "cache")
        self.home = os.path.join(self.dir, "home")
        for d in (self.run_dir, self.cache_dir):
            os.makedirs(d, mode=0o755)
        os.makedirs(self.home, mode=0o777)
        os.chmod(self.home, 0o1777)
        self.port = free_port()
        self.sock = os.path.join(self.dir, "tokend.sock")
        self.conf = os.path.join(self.dir, "pam_entra.conf")
        self.write_config()
        self.proc = None
        self.log = os.path.join(self.dir, "tokend.log")

    def write_config(self, extra=""):
        f = self.fake
        text = ("tenant = %s\nclient_id = %s\nauthority = %s\nca_file = %s\n"
                "cache_dir = %s\nrun_dir = %s\ndb_dir = %s\nhttp_timeout = 5\n"
                "imds_endpoint = %s\nmsi_source = imds\nservice_accounts = svc-train\n"
                "subscription_id = 00000000-0000-0000-0000-000000000000\n"
                "resource_group = rg-fake\nworkspace_name = ws-fake\n"
                "tokend_port = %d\ntokend_socket = %s\n%s" %
                (f.tenant_id, f.client_id, f.authority, f.ca_file, self.cache_dir, self.run_dir,
                 os.path.join(self.dir, "db"), f.msi_base, self.port, self.sock, extra))
        with open(self.conf, "w") as fh:
            fh.write(text)
        os.chmod(self.conf, 0o644)

    # -- the daemon -------------------------------------------------------

    def start(self, *args, env=None, pass_fds=(), preexec_fn=None, argv=None):
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(argv or [TOKEND, "--foreground", "--config", self.conf] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     env=env, pass_fds=pass_fds, preexec_fn=preexec_fn)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("entra-tokend exited %d: %s" % (self.proc.returncode, self.log_text()))
            try:
                if self.call({"op": "list"}).get("ok"):
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("entra-tokend did not start: " + self.log_text())

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_text(self):
        try:
            with open(self.log) as fh:
                return fh.read()
        except OSError:
            return ""

    def cleanup(self):
        self.stop()
        self.fake.stop()
        subprocess.run(["rm", "-rf", self.dir])

    def call(self, msg, path=None):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(path or self.sock)
            s.sendall(json.dumps(msg).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        return json.loads(data)

    # -- sessions ---------------------------------------------------------

    def device_login(self, upn="alice@contoso.com"):
        """A refresh token (and ARM access token) from a device flow at the fake."""
        f = self.fake
        base = "%s/%s/oauth2/v2.0" % (f.authority, f.tenant_id)
        _, _, dc = f.json("POST", base + "/devicecode",
                          form={"client_id": f.client_id, "scope": ARM + " openid profile offline_access"})
        f.control("approve", {"user_code": dc["user_code"], "claims": {"preferred_username": upn}})
        _, _, tok = f.json("POST", base + "/token",
                           form={"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                 "client_id": f.client_id, "device_code": dc["device_code"]})
        assert "refresh_token" in tok, tok
        return tok

    def make_session(self, uid, user="alice@contoso.com", kind="user", register=True):
        """Lay out a session as entra_session_open does; register it."""
        sid = secrets.token_hex(16)
        secret = secrets.token_hex(32)
        sdir = os.path.join(self.run_dir, str(uid), sid)
        os.makedirs(os.path.join(self.run_dir, str(uid)), mode=0o711, exist_ok=True)
        os.mkdir(sdir, 0o700)
        tok = self.device_login(user) if kind == "user" else {"access_token": "x", "refresh_token": None}
        with open(os.path.join(sdir, "token"), "w") as fh:
            fh.write(tok["access_token"])
        with open(os.path.join(sdir, "config.json"), "w") as fh:
            json.dump({"subscription_id": "00000000-0000-0000-0000-000000000000",
                       "resource_group": "rg-fake", "workspace_name": "ws-fake"}, fh)
        for name in ("token", "config.json"):
            os.chmod(os.path.join(sdir, name), 0o600)
            os.chown(os.path.join(sdir, name), uid, uid)
        os.chown(sdir, uid, uid)
        if kind == "user":
            priv = os.path.join(self.run_dir, "private")
            os.makedirs(priv, mode=0o700, exist_ok=True)
            p = os.path.join(priv, sid)
            with open(p, "w") as fh:
                json.dump({"user": user, "uid": uid, "identity_kind": "user",
                           "tenant_id": self.fake.tenant_id, "resource": ARM,
                           "refresh_token": tok["refresh_token"]}, fh)
            os.chmod(p, 0o600)
        sess = {"id": sid, "secret": secret, "uid": uid, "user": user, "dir": sdir,
                "kind": kind, "refresh_token": tok.get("refresh_token"),
                "login_token": tok["access_token"]}
        if register:
            ans = self.register(sess)
            assert ans == {"ok": True}, ans
        return sess

    def register(self, sess):
        return self.call({"op": "register", "session_id": sess["id"], "uid": sess["uid"],
                          "user": sess["user"], "identity_kind": "managed-identity" if sess["kind"] != "user" else "user",
                          "secret": sess["secret"]})

    def listed(self):
        return {s["session_id"]: s for s in self.call({"op": "list"})["sessions"]}

    def endpoint(self):
        return "http://127.0.0.1:%d/oauth2/token" % self.port

    def session_env(self, sess, **extra):
        env = {"PATH": "/usr/bin:/bin", "HOME": self.home, "LANG": "C.UTF-8",
               "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
               "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
               "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
               "PYTHONDONTWRITEBYTECODE": "1",
               "IDENTITY_ENDPOINT": self.endpoint(), "IDENTITY_HEADER": sess["secret"],
               "ENTRA_SESSION_DIR": sess["dir"], "ENTRA_TOKEN_FILE": os.path.join(sess["dir"], "token"),
               "ENTRA_TOKEN_RESOURCE": ARM, "AZURE_TENANT_ID": self.fake.tenant_id}
        env.update(extra)
        return env

    def as_uid(self, uid, argv, env, timeout=60, input=None):
        cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups", "--"] + argv
        return subprocess.run(cmd, env=env, capture_output=True, timeout=timeout, input=input,
                              cwd=self.home)

    def get(self, uid, secret, resource="https://management.azure.com", n=1, start_at=None,
            extra_query="", raw=None):
        """Run tokend_client.py as uid; a list of {status, body} (tokens as claims)."""
        args = {"port": self.port, "secret": secret, "resource": resource, "n": n,
                "start_at": start_at, "extra_query": extra_query, "raw": raw}
        r = self.as_uid(uid, [PYTHON, CLIENT, json.dumps(args)], {"PATH": "/usr/bin:/bin"})
        assert r.returncode == 0, r.stderr.decode()
        return [json.loads(line) for line in r.stdout.decode().splitlines()]

    def raw(self, data, timeout=5, close_write=True):
        """Send raw bytes to the TCP port as root; the raw answer."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            s.sendall(data)
            if close_write:
                s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            s.close()


def status_of(raw):
    line = raw.split(b"\r\n", 1)[0].decode()
    return int(line.split()[1])


def body_of(raw):
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


def fingerprint(rt):
    return hashlib.sha256(rt.encode()).hexdigest()[:16]


def query(resource):
    return urllib.parse.urlencode({"api-version": "2019-08-01", "resource": resource})
