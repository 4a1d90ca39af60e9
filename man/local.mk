# man
dist_man_MANS += man/pam_entra.conf.5
