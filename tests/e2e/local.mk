# e2e/local.mk
