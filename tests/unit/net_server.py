"""Scripted HTTPS test server for the http and oidc unit tests.

    net_server.py <dir>

Generates in <dir> a test CA (ca.pem), a certificate for 127.0.0.1 and
localhost signed by it, one for the wrong name (wrong.example) signed by it,
and a self-signed CA + 127.0.0.1 certificate the client does not trust.
Listens on 127.0.0.1 only:
  https      trusted certificate, the scripted routes below
  untrusted  certificate from an untrusted CA
  wrongname  trusted CA, certificate for another host name
  http       plain http, the same routes
  proxy      an HTTP CONNECT proxy (tunnels to 127.0.0.1 only; counted as
             path "CONNECT")
When ready it writes <dir>/ready (key=value lines, written atomically).

Routes (GET or POST):
  /status/<code>            that status, short text body
  /json                     200 application/json; charset=utf-8
  /ctype?v=<type>           200 with that Content-Type (absent when empty)
  /retry?v=<value>          429 with Retry-After: <value>
  /www-auth                 401 with WWW-Authenticate
  /delay/<ms>               waits, then 200
  /drip                     Content-Length 100, one byte every 100 ms
  /reset                    closes the connection with a TCP RST
  /big/<n>                  n bytes with Content-Length
  /bigchunked/<n>           n bytes, chunked, no length
  /redirect-http            302 to http://127.0.0.1:<http port>/json
  /redirect-host            302 to https://other.invalid/json
  /echo                     200 JSON: method, path, body, form, headers, client port
  /interim                  100 and 102 interim answers, then 200 "final"
  /close                    200 with Connection: close, then closes
  /idle-close               200 (keep-alive), then closes without saying so
  /raw?v=<bytes>            exactly those bytes (URL-decoded), then closes
Control (not counted):
  POST /_control/route      form: path, status, body, ctype: serve this at path
  POST /_control/reset      forget routes and counters
  GET  /_control/count?path=P   number of requests seen for P (any query)
  GET  /_control/jwks?kid=K     a JWKS holding one fixed RSA key with kid K
Everything not matched is 404. Debian's python3 with python3-cryptography.
"""
import base64
import datetime
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
import ipaddress

LOCK = threading.Lock()
ROUTES = {}
COUNTS = {}
PORTS = {}
JWK_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64u(n):
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def make_cert(dirname, stem, cn, sans, issuer_key=None, issuer_name=None, ca=False):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.utcnow()
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_name or subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    with open(os.path.join(dirname, stem + ".pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(dirname, stem + ".key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return key, cert


def context(dirname, stem):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(dirname, stem + ".pem"), os.path.join(dirname, stem + ".key"))
    return ctx


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body=b"", ctype="text/plain", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.handle_any(b"")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.handle_any(self.rfile.read(n) if n else b"")

    def handle_any(self, body):
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query, keep_blank_values=True)
        if path.startswith("/_control/"):
            return self.control(path, query, body)
        with LOCK:
            COUNTS[path] = COUNTS.get(path, 0) + 1
            route = ROUTES.get(path)
        if route is not None:
            return self.reply(route["status"], route["body"], route["ctype"])
        parts = path.strip("/").split("/")
        head = parts[0]
        if head == "status":
            return self.reply(int(parts[1]), "status %s\n" % parts[1])
        if head == "json":
            return self.reply(200, '{"ok":true}', "application/json; charset=utf-8")
        if head == "ctype":
            return self.reply(200, "x", query.get("v", [""])[0])
        if head == "retry":
            return self.reply(429, "slow down", headers=[("Retry-After", query["v"][0])])
        if head == "www-auth":
            return self.reply(401, "", headers=[
                ("WWW-Authenticate", 'Bearer realm="", error="insufficient_claims", claims="eyJ9"'),
                ("WWW-Authenticate", 'Basic realm="second"')])
        if head == "delay":
            time.sleep(int(parts[1]) / 1000.0)
            return self.reply(200, "late")
        if head == "drip":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
            return
        if head == "reset":
            # SO_LINGER 0 then close: the peer sees a TCP RST, no TLS alert.
            sock = self.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            os.close(sock.detach())
            return
        if head == "big":
            return self.reply(200, b"a" * int(parts[1]))
        if head == "bigchunked":
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"a" * 4096
            while n > 0:
                c = chunk[:min(n, 4096)]
                n -= len(c)
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                except OSError:
                    return
            self.wfile.write(b"0\r\n\r\n")
            return
        if head == "redirect-http":
            return self.reply(302, "", headers=[
                ("Location", "http://127.0.0.1:%d/json?code=x" % PORTS["http"])])
        if head == "redirect-host":
            return self.reply(302, "", headers=[("Location", "https://other.invalid/json")])
        if head == "interim":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\n"
                             b"HTTP/1.1 102 Processing\r\n\r\n")
            return self.reply(200, "final", "application/json")
        if head == "close":
            return self.reply(200, "bye", headers=[("Connection", "close")])
        if head == "idle-close":
            self.close_connection = True
            return self.reply(200, "idle")
        if head == "raw":
            self.close_connection = True
            self.wfile.write(urllib.parse.unquote_to_bytes(url.query[2:]))
            return
        if head == "echo":
            form = {k: v[0] for k, v in urllib.parse.parse_qs(
                body.decode("latin-1"), keep_blank_values=True).items()}
            doc = {"method": self.command, "path": self.path, "body": body.decode("latin-1"),
                   "form": form, "headers": {k.lower(): v for k, v in self.headers.items()},
                   "client_port": self.client_address[1]}
            return self.reply(200, json.dumps(doc), "application/json")
        return self.reply(404, "not found")

    def control(self, path, query, body):
        form = {k: v[0] for k, v in urllib.parse.parse_qs(
            body.decode(), keep_blank_values=True).items()}
        if path == "/_control/route":
            with LOCK:
                ROUTES[form["path"]] = {"status": int(form.get("status", "200")),
                                        "body": form.get("body", ""),
                                        "ctype": form.get("ctype", "application/json")}
            return self.reply(200, "ok")
        if path == "/_control/reset":
            with LOCK:
                ROUTES.clear()
                COUNTS.clear()
            return self.reply(200, "ok")
        if path == "/_control/count":
            with LOCK:
                n = COUNTS.get(query["path"][0], 0)
            return self.reply(200, str(n))
        if path == "/_control/jwks":
            pub = JWK_KEY.public_key().public_numbers()
            doc = {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256",
                             "kid": query["kid"][0], "n": int_b64u(pub.n),
                             "e": int_b64u(pub.e)}]}
            return self.reply(200, json.dumps(doc), "application/json")
        return self.reply(404, "no such control")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, ctx):
        self.ctx = ctx
        super().__init__(("127.0.0.1", 0), Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's thread, so a client
        # that stalls or rejects our certificate blocks nobody else.
        if self.ctx is not None:
            try:
                request.settimeout(30)
                request = self.ctx.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
        try:
            Handler(request, client_address, self)
        except (OSError, ssl.SSLError):
            pass

    def handle_error(self, request, client_address):
        pass


def proxy_tunnel(conn):
    # Read the request head, open the tunnel to a loopback port, relay.
    try:
        conn.settimeout(30)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            data = conn.recv(4096)
            if not data:
                return
            head += data
        line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        with LOCK:
            COUNTS["CONNECT"] = COUNTS.get("CONNECT", 0) + 1
        if len(line) != 3 or line[0] != "CONNECT" or not line[1].startswith("127.0.0.1:"):
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        up = socket.create_connection(("127.0.0.1", int(line[1].split(":")[1])), timeout=30)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\nX-Proxy: test\r\n\r\n")

        def pump(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        t = threading.Thread(target=pump, args=(up, conn), daemon=True)
        t.start()
        pump(conn, up)
        t.join()
        up.close()
    except OSError:
        pass
    finally:
        conn.close()


def proxy_serve(listener):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=proxy_tunnel, args=(conn,), daemon=True).start()


def main():
    d = sys.argv[1]
    ca_key, ca_cert = make_cert(d, "ca", "pam_entra test CA", None, ca=True)
    make_cert(d, "server", "127.0.0.1",
              [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
              ca_key, ca_cert.subject)
    make_cert(d, "wrongname", "wrong.example", [x509.DNSName("wrong.example")],
              ca_key, ca_cert.subject)
    other_key, other_cert = make_cert(d, "otherca", "untrusted test CA", None, ca=True)
    make_cert(d, "untrusted", "127.0.0.1",
              [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], other_key, other_cert.subject)
    servers = {
        "https": Server(context(d, "server")),
        "untrusted": Server(context(d, "untrusted")),
        "wrongname": Server(context(d, "wrongname")),
        "http": Server(None),
    }
    for name, srv in servers.items():
        PORTS[name] = srv.server_address[1]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(16)
    PORTS["proxy"] = proxy.getsockname()[1]
    threading.Thread(target=proxy_serve, args=(proxy,), daemon=True).start()
    tmp = os.path.join(d, "ready.tmp")
    with open(tmp, "w") as f:
        for name, port in PORTS.items():
            f.write("%s=%d\n" % (name, port))
        f.write("ca=%s\n" % os.path.join(d, "ca.pem"))
    os.rename(tmp, os.path.join(d, "ready"))
    # Until the parent test kills us; exit by ourselves if it died.
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)


if __name__ == "__main__":
    main()
