# unit/session.mk
