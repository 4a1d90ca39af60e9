# man pages, hand-written troff
dist_man_MANS += man/pam_entra.8
dist_man_MANS += man/pam_entra.conf.5
