"""A minimal TAP producer for the Python tests (Debian's python3 only).

    from taplib import test, skip, run
    @test
    def login_works(): assert ...
    run()

Each test is a function; an AssertionError or any exception is "not ok"
with the traceback as TAP diagnostics; skip("reason") inside a test marks
it skipped. run() prints the plan and exits 0 (the TAP driver counts).
"""
import sys
import traceback

_tests = []


class Skip(Exception):
    pass


def skip(reason):
    raise Skip(reason)


def test(fn):
    _tests.append(fn)
    return fn


def run(setup=None, teardown=None):
    print("1..%d" % len(_tests), flush=True)
    ctx = None
    try:
        if setup is not None:
            ctx = setup()
    except Skip as e:
        for i, fn in enumerate(_tests, 1):
            print("ok %d - %s # SKIP %s" % (i, fn.__name__, e), flush=True)
        return
    except Exception:
        for line in traceback.format_exc().splitlines():
            print("# " + line)
        for i, fn in enumerate(_tests, 1):
            print("not ok %d - %s (setup failed)" % (i, fn.__name__), flush=True)
        return
    try:
        for i, fn in enumerate(_tests, 1):
            try:
                fn() if ctx is None else fn(ctx)
                print("ok %d - %s" % (i, fn.__name__), flush=True)
            except Skip as e:
                print("ok %d - %s # SKIP %s" % (i, fn.__name__, e), flush=True)
            except Exception:
                print("not ok %d - %s" % (i, fn.__name__), flush=True)
                for line in traceback.format_exc().splitlines():
                    print("# " + line, flush=True)
    finally:
        if teardown is not None:
            teardown(ctx)
    sys.stdout.flush()
