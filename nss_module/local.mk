# nss_module
