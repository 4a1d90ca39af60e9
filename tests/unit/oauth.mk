# unit/oauth.mk
