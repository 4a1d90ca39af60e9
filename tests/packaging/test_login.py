#!/usr/bin/python3
"""Drives `entractl setup ... --test-login USER` as a person would: reads
the code from the terminal, approves it at the fake Entra (the phone),
presses Enter, and checks that entractl reports who signed in.

    test_login.py FAKE_DIR COMMAND...
"""
import json
import os
import sys

import pexpect

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fake"))
from fakectl import Fake  # noqa: E402

USER = "alice@contoso.com"


def main():
    fake_dir, argv = sys.argv[1], sys.argv[2:]
    with open(os.path.join(fake_dir, "fake.json")) as f:
        fake = Fake(None, fake_dir, json.load(f))
    child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", codec_errors="replace", timeout=30)
    try:
        child.expect(r"enter the code ([A-Z0-9]+)")
        code = child.match.group(1)
        child.expect("Press Enter after you have signed in: ")
        fake.control("approve", {"user_code": code,
                                 "claims": {"preferred_username": USER, "roles": ["Node.Admin"]}})
        child.sendline("")
        child.expect(pexpect.EOF)
    except (pexpect.TIMEOUT, pexpect.EOF):
        print(child.before)
        return 1
    finally:
        child.close()
    out = child.before
    print(out)
    if child.exitstatus != 0:
        print("exit status %s" % child.exitstatus)
        return 1
    if "signed in: %s" % USER not in out or "[admin]" not in out:
        print("no 'signed in: %s ... [admin]' line" % USER)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
