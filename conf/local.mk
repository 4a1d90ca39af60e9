# conf
# The documented example configuration (pam_entra.conf(5)).
pamentraexampledir = $(docdir)/examples
dist_pamentraexample_DATA = conf/pam_entra.conf
EXTRA_DIST += conf/systemd/entra-tokend.service conf/systemd/entra-tokend.socket
