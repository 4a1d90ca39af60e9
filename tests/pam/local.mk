# pam/local.mk
