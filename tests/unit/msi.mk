# unit/msi.mk
