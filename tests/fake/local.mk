# fake/local.mk
