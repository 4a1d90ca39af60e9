/* pam_entra.so exports the pam_sm_* entry points and nothing else. */
#include "config.h"

#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define MODULE TEST_BUILDDIR "/pam_module/.libs/pam_entra.so"

static void test_entry_points_resolve(void **state)
{
	static const char *const entry[] = {
		"pam_sm_authenticate", "pam_sm_setcred", "pam_sm_acct_mgmt",
		"pam_sm_open_session", "pam_sm_close_session", "pam_sm_chauthtok",
	};
	static const char *const hidden[] = {
		"entra_login_authenticate", "entra_config_new", "entra_jwt_verify",
		"entra_http_get", "entra_session_open", "entra_log",
	};
	void *h = dlopen(MODULE, RTLD_NOW | RTLD_LOCAL);

	(void)state;
	if (h == NULL)
		fprintf(stderr, "# dlopen: %s\n", dlerror());
	assert_non_null(h);
	for (size_t i = 0; i < sizeof(entry) / sizeof(entry[0]); i++)
		assert_non_null(dlsym(h, entry[i]));
	for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
		assert_null(dlsym(h, hidden[i]));
	dlclose(h);
}

static void test_dynamic_symbol_table(void **state)
{
	char line[512];
	int exported = 0;
	FILE *p = popen("nm -D --defined-only " MODULE, "r");

	(void)state;
	assert_non_null(p);
	while (fgets(line, sizeof(line), p) != NULL) {
		char *name = strrchr(line, ' ');
		assert_non_null(name);
		name++;
		name[strcspn(name, "\n")] = '\0';
		if (strncmp(name, "pam_sm_", 7) != 0) {
			fprintf(stderr, "# unexpected export: %s\n", name);
			fail();
		}
		exported++;
	}
	assert_int_equal(pclose(p), 0);
	assert_int_equal(exported, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entry_points_resolve),
		cmocka_unit_test(test_dynamic_symbol_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
