/* libFuzzer target: entra_json_parse and the typed getters. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_getters(struct json_object *obj)
{
	json_object_object_foreach(obj, key, val) {
		const char *str = entra_json_get_string(obj, key);
		struct json_object *arr = entra_json_get_string_array(obj, key);
		int64_t v;
		int rc = entra_json_get_int64(obj, key, &v);

		/* A string handed out is a whole C string. */
		if (str != NULL && strlen(str) != (size_t)json_object_get_string_len(val))
			abort();
		if (rc == 0 && str != NULL) {
			if (*str == '\0' || strspn(str, "0123456789") != strlen(str) || v < 0)
				abort();
		}
		if (rc != 0 && rc != -EINVAL)
			abort();
		if (arr != NULL) {
			for (size_t i = 0; i < json_object_array_length(arr); i++) {
				const char *s = json_object_get_string(json_object_array_get_idx(arr, i));

				if (!entra_json_string_or_array_contains(obj, key, s))
					abort();
			}
		}
		(void)entra_json_string_or_array_contains(obj, key, "x");
		if (json_object_is_type(val, json_type_object))
			check_getters(val);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *error = NULL;
	struct json_object *any, *obj;

	any = entra_json_parse_ex((const char *)data, size, false, &error);
	if ((any == NULL) != (error != NULL))
		abort();
	obj = entra_json_parse_object((const char *)data, size);
	/* The object parser accepts exactly the objects the other accepts. */
	if ((obj != NULL) != (any != NULL && json_object_is_type(any, json_type_object)))
		abort();
	if (obj != NULL)
		check_getters(obj);
	json_object_put(obj);
	json_object_put(any);
	return 0;
}
