# man pages, hand-written troff
dist_man_MANS += man/pam_entra.8
dist_man_MANS += man/pam_entra.conf.5
dist_man_MANS += man/entractl.8
dist_man_MANS += man/nss_entra.8
dist_man_MANS += man/entra-tokend.8
dist_man_MANS += man/entra-token.1
