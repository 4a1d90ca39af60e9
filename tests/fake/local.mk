# Fake Entra ID + managed-identity server (tests/fake/README.md) and its judges.
TESTS += tests/fake/test_fake_protocol.py tests/fake/test_fake_clients.py
EXTRA_DIST += \
	tests/fake/README.md \
	tests/fake/fake_entra.py \
	tests/fake/fakectl.py \
	tests/fake/package.json \
	tests/fake/package-lock.json \
	tests/fake/test_fake_protocol.py \
	tests/fake/test_fake_clients.py
