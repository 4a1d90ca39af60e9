# pam_module
