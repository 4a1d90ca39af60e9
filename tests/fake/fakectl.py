"""Drive tests/fake/fake_entra.py from Python tests (Debian's python3 only).

    from fakectl import Fake
    fake = Fake.start(tmpdir)          # spawns the server, waits for fake.json
    fake.control("configure", {"interval": 1})
    fake.control("approve", {"claims": {"preferred_username": "alice@contoso.com"}})
    fake.requests()["counts"]["token"]
    fake.stop()

See tests/fake/README.md for the control API.
"""
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_entra.py")
PYTHON = "/usr/bin/python3"


class Fake:
    def __init__(self, proc, d, info):
        self.proc, self.dir, self.info = proc, d, info
        for k, v in info.items():
            setattr(self, k, v)
        self.ssl_context = ssl.create_default_context(cafile=self.ca_file)
        self.msi_base = "http://127.0.0.1:%d" % self.http_port

    @classmethod
    def start(cls, d, *args, timeout=15):
        """Start a fake whose files live in d; extra args go to fake_entra.py."""
        d = os.path.abspath(d)
        os.makedirs(d, exist_ok=True)
        info_path = os.path.join(d, "fake.json")
        try:
            os.unlink(info_path)
        except FileNotFoundError:
            pass
        err = open(os.path.join(d, "fake.stderr"), "ab")
        proc = subprocess.Popen([PYTHON, FAKE, "--dir", d] + list(args), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, close_fds=True)
        err.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("fake_entra.py exited with %d (see %s/fake.stderr)" % (proc.returncode, d))
            try:
                with open(info_path) as f:
                    info = json.load(f)
                if info.get("pid") == proc.pid:
                    return cls(proc, d, info)
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        raise RuntimeError("fake_entra.py did not start within %ss" % timeout)

    # -- raw HTTP helpers, useful for wire-format tests ----------------------

    def http(self, method, url, form=None, body=None, headers=None, timeout=30):
        """(status, headers dict (lower-case names), raw body bytes); never raises on HTTP errors."""
        hdrs = dict(headers or {})
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if not url.startswith("http"):
            url = (self.authority if not url.startswith("/metadata") else self.msi_base) + url
        req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
        ctx = self.ssl_context if url.startswith("https:") else None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=ctx))
        try:
            with opener.open(req, timeout=timeout) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def json(self, method, url, **kw):
        status, headers, raw = self.http(method, url, **kw)
        return status, headers, json.loads(raw)

    def control(self, path, body=None, method=None):
        """POST (or GET when method="GET") /_control/<path>; returns the decoded JSON."""
        path = path if path.startswith("/_control/") else "/_control/" + path.lstrip("/")
        method = method or "POST"
        status, _, raw = self.http(method, path, body=body if method == "POST" else None)
        out = json.loads(raw) if raw else None
        if status != 200:
            raise RuntimeError("control %s failed: %d %s" % (path, status, raw[:300]))
        return out

    def requests(self):
        return self.control("requests", method="GET")

    def flows(self):
        return self.control("flows", method="GET")

    def wait_pending_flow(self, timeout=30):
        """Wait until some client has started a device flow; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = [f for f in self.flows() if f["state"] == "pending"]
            if pending:
                return pending[-1]
            time.sleep(0.05)
        raise RuntimeError("no device flow started within %ss" % timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    # Handy by hand: python3 tests/fake/fakectl.py DIR  → runs until Ctrl-C.
    f = Fake.start(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fake-entra")
    print(json.dumps(f.info, indent=1))
    try:
        f.proc.wait()
    except KeyboardInterrupt:
        f.stop()
