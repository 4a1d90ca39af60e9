# nss/local.mk
