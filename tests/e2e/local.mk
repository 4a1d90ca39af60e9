# e2e/local.mk: real sshd, su, sudo and glibc NSS with pam_entra (as root,
# inside private mount + PID namespaces; see tests/e2e/rig.py). They need
# tests/nss/userdb_tool (a check program of tests/nss) to seed the user
# database with the first-login rules. test_sudo_stepup.py: step-up to
# authentication context c2 for sudo only. test_sshd_tokend.py also needs
# tools/entra-tokend and tools/entra-token, and python3-azure.
TESTS += tests/e2e/test_sshd.py tests/e2e/test_su_sudo.py tests/e2e/test_nss_real.py \
	tests/e2e/test_sshd_tokend.py tests/e2e/test_sudo_stepup.py
EXTRA_DIST += tests/e2e/rig.py tests/e2e/test_sshd.py tests/e2e/test_su_sudo.py tests/e2e/test_nss_real.py \
	tests/e2e/test_sshd_tokend.py tests/e2e/test_sudo_stepup.py
