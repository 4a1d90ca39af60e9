"""One or more token requests to entra-tokend, each from its own process
(os.fork), optionally all at the same instant. Run as the session's uid by
the tests. argv[1]: JSON {port, secret, resource, n, start_at, extra_query,
raw}. Prints one JSON line per request: {status, body}, where a token is
replaced by its claims (the test needs them; a token is never printed)."""
import base64
import http.client
import json
import os
import sys
import time
import urllib.parse


def one(a):
    if a.get("start_at"):
        delay = a["start_at"] - time.time()
        if delay > 0:
            time.sleep(delay)
    q = urllib.parse.urlencode({"api-version": "2019-08-01", "resource": a["resource"]}) + a.get("extra_query", "")
    c = http.client.HTTPConnection("127.0.0.1", a["port"], timeout=30)
    headers = {} if a.get("secret") is None else {"X-IDENTITY-HEADER": a["secret"]}
    c.request("GET", "/oauth2/token?" + q, headers=headers)
    r = c.getresponse()
    body = json.loads(r.read() or b"null")
    if isinstance(body, dict) and "access_token" in body:
        p = body["access_token"].split(".")[1]
        body["claims"] = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        body["access_token"] = "<%d chars>" % len(body["access_token"])
    return {"status": r.status, "body": body}


def main():
    a = json.loads(sys.argv[1])
    n = a.get("n", 1)
    pipes = []
    for _ in range(n):
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            try:
                out = one(a)
            except Exception as e:  # reported to the test, which fails
                out = {"status": -1, "error": repr(e)}
            os.write(wfd, json.dumps(out).encode())
            os._exit(0)
        os.close(wfd)
        pipes.append((pid, rfd))
    for pid, rfd in pipes:
        data = b""
        while True:
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            data += chunk
        os.close(rfd)
        os.waitpid(pid, 0)
        print(data.decode(), flush=True)


main()
