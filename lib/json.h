/* json-c helpers: strict parsing with limits, typed getters. */
#ifndef ENTRA_JSON_H
#define ENTRA_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#define ENTRA_JSON_MAX_DEPTH 16

/* Parse exactly one JSON value from text[0..len): strict mode, depth at
 * most ENTRA_JSON_MAX_DEPTH, nothing but whitespace after it, no NUL
 * inside, no duplicate keys in any object. NULL on any error. The caller
 * owns the result (json_object_put). */
struct json_object *entra_json_parse(const char *text, size_t len);

/* Same, requiring the top level to be an object. */
struct json_object *entra_json_parse_object(const char *text, size_t len);

/* Either of the above (want_object), with a short static description of
 * what was wrong in *error ("duplicate key", "nested too deep", ...), for
 * log lines. error may be NULL. Beyond RFC 8259 it also refuses lone
 * surrogates, invalid UTF-8, an escaped NUL in a key, and integers that do
 * not fit in 64 bits. */
struct json_object *entra_json_parse_ex(const char *text, size_t len, bool want_object,
					const char **error);

/* The string member `key`, or NULL if absent or not a string. Borrowed.
 * A string holding an escaped NUL (\u0000) counts as "not a string" here and
 * in the getters below: as a C string it would read as a shorter value. */
const char *entra_json_get_string(struct json_object *obj, const char *key);

/* Wipe the string member `key` in place (absent or not a string: no-op).
 * json-c frees its strings without wiping them: secrets parsed into a tree
 * are wiped before the tree is put. The storage is json-c's own copy. */
void entra_json_wipe_member(struct json_object *obj, const char *key);

/* The integer member `key`, given as a JSON integer or as a string of
 * decimal digits only ([0-9]+, no sign: Entra and IMDS send both forms).
 * 0, -ENOENT (absent), -EINVAL (other type, double, garbage, overflow). */
int entra_json_get_int64(struct json_object *obj, const char *key, int64_t *out);

/* The member `key` when it is an array of strings; NULL otherwise.
 * Borrowed. An array holding a non-string makes it NULL. */
struct json_object *entra_json_get_string_array(struct json_object *obj, const char *key);

/* True when `key` is a string equal to value, or an array of strings
 * containing value (case-sensitive). */
bool entra_json_string_or_array_contains(struct json_object *obj, const char *key,
					 const char *value);

#endif
