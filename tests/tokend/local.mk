# The token service (entra-tokend, entra-token): tests/tokend/README is the
# test plan in short; the Python tests need root (clients run as other uids).
TESTS += tests/tokend/test_tokend.py
EXTRA_DIST += \
	tests/tokend/tokendlib.py \
	tests/tokend/tokend_client.py \
	tests/tokend/test_tokend.py
