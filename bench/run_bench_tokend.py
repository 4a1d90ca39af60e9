#!/usr/bin/python3
"""make bench: entra-tokend against the fake Entra, one person's session
with a warm cache, then bench/bench_tokend as that session's uid."""
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.environ.get("ENTRA_SRCDIR", os.path.dirname(here)), "tests", "tokend"))
from tokendlib import UID_A, Rig, is_root  # noqa: E402

if not is_root():
    print("bench_tokend: skipped (needs root: the session runs as another uid)")
    sys.exit(0)
rig = Rig()
try:
    rig.start("--grace", "3600", "--max-connections", "256")
    sess = rig.make_session(UID_A)
    [r] = rig.get(UID_A, sess["secret"], "https://management.azure.com")
    assert r["status"] == 200, r
    bench = os.path.join(os.environ.get("ENTRA_BUILDDIR", "."), "bench", "bench_tokend")
    out = rig.as_uid(UID_A, [bench], rig.session_env(sess), timeout=120)
    sys.stdout.write(out.stdout.decode())
    sys.stderr.write(out.stderr.decode())
    sys.exit(out.returncode)
finally:
    rig.cleanup()
