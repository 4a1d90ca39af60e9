# man
dist_man_MANS += man/entractl.8
dist_man_MANS += man/nss_entra.8
