# unit/crypto.mk
