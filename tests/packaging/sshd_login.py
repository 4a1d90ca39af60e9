#!/usr/bin/python3
"""Real-sshd logins against the INSTALLED pam_entra packages.

Run by tests/packaging/run after the packages are installed, the
configuration written by `entractl setup` and `pam-auth-update --enable
entra` done. sshd is /usr/sbin/sshd itself, so its PAM service is the
machine's own /etc/pam.d/sshd with the common-* files pam-auth-update
generated: the test exercises exactly what an administrator gets.

Runs in private mount and PID namespaces (it re-executes itself under
unshare): /etc and /home are overlaid with layers on a private tmpfs, so
the local test account and the Entra user's home directory never reach
the real machine. /var and /run are the real ones on purpose: the login
records the user in /var/lib/pam_entra and keeps its session in
/run/pam_entra, which purging the packages must remove.

    sshd_login.py WORK FAKE_DIR REPORT.json

Prints TAP; exits non-zero when a check failed.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fake"))
NS_FLAG = "ENTRA_PACKAGING_IN_NAMESPACE"
USER = "alice@contoso.com"
LOCAL_USER = "pkglocal"
LOCAL_PASSWORD = "local-Pa55-for-pam_unix"
ADMIN_ROLE = "Node.Admin"

results = []


def tap(ok, name, detail=""):
    results.append(ok)
    print("%s %d - %s" % ("ok" if ok else "not ok", len(results), name))
    if detail and not ok:
        for line in str(detail).splitlines()[-30:]:
            print("# " + line)
    sys.stdout.flush()
    return ok


def run(args, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.STDOUT)
    kw.setdefault("universal_newlines", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(args, **kw)


def must(args):
    p = run(args)
    if p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), p.stdout))
    return p.stdout


def enter_namespace():
    if os.environ.get(NS_FLAG) == "1" and os.getpid() == 1:
        return
    env = dict(os.environ)
    env[NS_FLAG] = "1"
    sys.stdout.flush()
    os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
                           "--kill-child", "--mount-proc", "/usr/bin/python3", os.path.abspath(__file__)]
               + sys.argv[1:], env)


def overlay(layers, d):
    name = d.strip("/").replace("/", "_")
    upper, work = os.path.join(layers, name, "upper"), os.path.join(layers, name, "work")
    os.makedirs(upper)
    os.makedirs(work)
    st = os.stat(d)
    os.chown(upper, st.st_uid, st.st_gid)
    os.chmod(upper, st.st_mode & 0o7777)
    must(["mount", "-t", "overlay", "overlay", "-o",
          "lowerdir=%s,upperdir=%s,workdir=%s" % (d, upper, work), d])


def add_local_user():
    """A local account with a password, only in this namespace's /etc."""
    hashed = must(["openssl", "passwd", "-6", "-salt", "pkgtestsalt", LOCAL_PASSWORD]).strip()
    with open("/etc/passwd", "a") as f:
        f.write("%s:x:64998:64998:packaging test:/home/%s:/bin/bash\n" % (LOCAL_USER, LOCAL_USER))
    with open("/etc/group", "a") as f:
        f.write("%s:x:64998:\n" % LOCAL_USER)
    with open("/etc/shadow", "a") as f:
        f.write("%s:%s:19000:0:99999:7:::\n" % (LOCAL_USER, hashed))
    os.makedirs("/home/" + LOCAL_USER, exist_ok=True)
    os.chown("/home/" + LOCAL_USER, 64998, 64998)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_sshd(work):
    d = os.path.join(work, "sshd")
    os.makedirs(d, mode=0o700)
    key = os.path.join(d, "host_ed25519")
    must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
    port = free_port()
    conf = os.path.join(d, "sshd_config")
    with open(conf, "w") as f:
        f.write("\n".join([
            "ListenAddress 127.0.0.1", "Port %d" % port, "HostKey %s" % key,
            "PidFile %s/sshd.pid" % d,
            # the two lines entractl setup tells the administrator to add
            "KbdInteractiveAuthentication yes", "UsePAM yes",
            "PasswordAuthentication no", "PubkeyAuthentication no",
            "AuthenticationMethods keyboard-interactive", "PermitRootLogin no",
            "PrintMotd no", "PrintLastLog no", "UseDNS no", "LogLevel VERBOSE", ""]))
    os.chmod(conf, 0o600)
    must(["/usr/sbin/sshd", "-t", "-f", conf])
    log = open(os.path.join(d, "sshd.log"), "ab")
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", conf], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("sshd exited: " + open(log.name).read()[-2000:])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port, log.name
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("sshd did not listen")


def ssh(port, user):
    import pexpect
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "TERM": "dumb", "HOME": "/root"}
    return pexpect.spawn("ssh", ["-F", "/dev/null", "-tt",
                                 "-o", "PreferredAuthentications=keyboard-interactive",
                                 "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                 "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                                 "-o", "NumberOfPasswordPrompts=1", "-p", str(port), "-l", user,
                                 "127.0.0.1"],
                         env=env, encoding="utf-8", codec_errors="replace", timeout=30)


def shell_run(child, cmd):
    child.sendline("echo __B''EGIN__; %s; echo __E''ND__ $?" % cmd)
    child.expect(r"__BEGIN__\r?\n")
    child.expect(r"__END__ (\d+)\r?\n")
    return int(child.match.group(1)), child.before.replace("\r\n", "\n").strip()


def start_shell(child):
    child.sendline("stty -echo; PS1='' PS2=''; echo __RE''ADY__")
    child.expect(r"__READY__\r?\n")


def main():
    enter_namespace()
    import pexpect
    from fakectl import Fake
    work, fake_dir, report_path = sys.argv[1:4]
    must(["mount", "--make-rprivate", "/"])
    ns = os.path.join(work, "ns")
    os.makedirs(ns, mode=0o700, exist_ok=True)
    must(["mount", "-t", "tmpfs", "-o", "mode=0700,size=64m", "pkg-test", ns])
    layers = os.path.join(ns, "layers")
    for d in ("/etc", "/home"):
        overlay(layers, d)
    add_local_user()
    with open(os.path.join(fake_dir, "fake.json")) as f:
        fake = Fake(None, fake_dir, json.load(f))
    report = {}
    sshd, port, sshd_log = start_sshd(ns)
    try:
        # NSS from the installed library, database written by entractl setup
        p = run(["getent", "passwd", USER])
        fields = p.stdout.strip().split(":")
        tap(p.returncode == 0 and fields[0] == USER and len(fields) == 7 and int(fields[2]) >= 1900000000,
            "getent passwd %s resolves before the first login (installed libnss_entra.so.2)" % USER, p.stdout)

        before = fake.requests()["counts"]
        child = ssh(port, USER)
        seen = ""
        try:
            child.expect(r"enter the code ([A-Z0-9]+)")
            code = child.match.group(1)
            seen += child.before + child.after
            child.expect("Press Enter after you have signed in: ")
            fake.control("approve", {"user_code": code,
                                     "claims": {"preferred_username": USER, "roles": [ADMIN_ROLE]}})
            child.sendline("")
            start_shell(child)
            tap(True, "ssh %s: device-code prompt, approval, shell" % USER)
            rc, out = shell_run(child, "id -un; id -Gn; echo \"upn=$ENTRA_UPN\"; "
                                "test -s \"$ENTRA_TOKEN_FILE\" && echo token-file-ok; "
                                "echo \"dir=$ENTRA_SESSION_DIR\"")
            tap(rc == 0 and out.splitlines()[0] == USER, "the session runs as %s" % USER, out)
            tap("upn=" + USER in out and "token-file-ok" in out and "dir=/run/pam_entra/" in out,
                "session has ENTRA_UPN, a token file and a session dir under /run/pam_entra", out)
            tap("entra-admins" in out.splitlines()[1], "app role %s makes the user a member of entra-admins"
                % ADMIN_ROLE, out)
            m = re.search(r"dir=(\S+)", out)
            session_dir = m.group(1) if m else None
            child.sendline("exit")
            child.expect(pexpect.EOF)
        except (pexpect.TIMEOUT, pexpect.EOF) as e:
            tap(False, "ssh %s: device-code login" % USER,
                seen + (child.before or "") + "\n" + str(e)[:300] + "\n" + open(sshd_log).read()[-3000:])
            session_dir = None
        finally:
            child.close()
        after = fake.requests()["counts"]
        report["fake_requests_per_login"] = {k: after.get(k, 0) - before.get(k, 0) for k in after
                                            if after.get(k, 0) != before.get(k, 0)}
        if session_dir:
            deadline = time.monotonic() + 5
            while os.path.exists(session_dir) and time.monotonic() < deadline:
                time.sleep(0.05)
            tap(not os.path.exists(session_dir), "the session directory is removed at logout")
        p = run(["getent", "passwd", USER])
        tap(p.returncode == 0, "the login is recorded in /var/lib/pam_entra", p.stdout)

        # A local account still logs in with its password through pam_unix
        for password, want in ((LOCAL_PASSWORD, True), ("wrong-password", False)):
            child = ssh(port, LOCAL_USER)
            try:
                i = child.expect([r"[Pp]assword: ", r"enter the code", pexpect.EOF])
                if i != 0:
                    tap(False, "local account %s gets pam_unix's password prompt" % LOCAL_USER, child.before)
                    continue
                child.sendline(password)
                if want:
                    start_shell(child)
                    rc, out = shell_run(child, "id -un")
                    tap(rc == 0 and out == LOCAL_USER,
                        "local account %s logs in with its password (pam_unix reachable)" % LOCAL_USER, out)
                    child.sendline("exit")
                    child.expect(pexpect.EOF)
                else:
                    i = child.expect([r"__READY__", pexpect.EOF, r"[Pp]assword: "], timeout=20)
                    tap(i != 0, "local account %s with a wrong password is refused" % LOCAL_USER, child.before)
            except (pexpect.TIMEOUT, pexpect.EOF) as e:
                tap(False, "local account %s login (%s password)" % (LOCAL_USER, "right" if want else "wrong"),
                    (child.before or "") + str(e)[:300] + open(sshd_log).read()[-2000:])
            finally:
                child.close()
    finally:
        sshd.terminate()
        sshd.wait(5)
    with open(report_path, "w") as f:
        json.dump(report, f)
    print("1..%d" % len(results))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
