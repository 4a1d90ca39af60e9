# unit/policy.mk
