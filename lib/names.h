/* Checks on names and values that come from users or from tokens, made
 * before they reach a file path, an environment variable or a database. */
#ifndef ENTRA_NAMES_H
#define ENTRA_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define ENTRA_NAME_MAX 256 /* longest user name, UPN or group name accepted */

/* A user or group name we will handle: 1..ENTRA_NAME_MAX bytes of
 * [A-Za-z0-9._@+-], not starting with '-' or '.', no "..".
 * This also makes it safe as a single path component. */
bool entra_name_is_valid(const char *name);

/* A value fit for an environment variable or a file: at most max bytes,
 * no control characters (including newline), valid as plain bytes >= 0x20. */
bool entra_value_is_safe(const char *value, size_t max);

/* The value of a hex digit of either case, or -1. */
int entra_hex_value(char c);

/* n bytes as 2n lowercase hex digits, then a NUL (out holds 2n + 1). */
void entra_hex_encode(const unsigned char *in, size_t n, char *out);

/* 8-4-4-4-12 hex digits, either case. */
bool entra_is_guid(const char *s);

/* ASCII case-insensitive equality; false when either is NULL. */
bool entra_streq_nocase(const char *a, const char *b);

/* Constant-time comparison of two equal-length byte strings. */
bool entra_memeq_consttime(const void *a, const void *b, size_t len);

#endif
