# unit/net.mk
