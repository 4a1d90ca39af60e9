/* Azure RBAC: action matching, permission evaluation, the ARM permissions
 * client, the per-user decision cache and ARM token checks. See rbac.h. */
#include "rbac.h"

#include "b64.h"
#include "buf.h"
#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "names.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#define PERMISSIONS_PATH "/providers/Microsoft.Authorization/permissions"
#define MAX_URL 4096
#define MAX_CACHE_FILE 4096
#define CACHE_DIR_NAME "rbac"
#define CACHE_FUTURE_SKEW 60


static int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* ------------------------------------------------------------------ */
/* Matching                                                            */

/* Glob with '*' only, ASCII case-insensitive. Iterative with one
 * backtrack point: O(len(pattern) * len(action)) at worst, no recursion,
 * so a hostile pattern from the network cannot blow the stack. */
bool entra_rbac_action_matches(const char *pattern, const char *action)
{
	const char *p, *a, *star = NULL, *resume = NULL;

	if (pattern == NULL || action == NULL)
		return false;
	p = pattern;
	a = action;
	while (*a != '\0') {
		if (*p == '*') {
			while (*p == '*')
				p++;
			if (*p == '\0')
				return true;
			star = p;
			resume = a;
		} else if (*p != '\0' && lower((unsigned char)*p) == lower((unsigned char)*a)) {
			p++;
			a++;
		} else if (star != NULL) {
			p = star;
			a = ++resume;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

int entra_rbac_action_check(const char *configured, char *err, size_t errlen)
{
	const char *name = configured;
	size_t len;

	if (configured == NULL || *configured == '\0') {
		entra_set_reason(err, errlen, "empty action");
		return -EINVAL;
	}
	if (strncmp(name, ENTRA_RBAC_CONTROL_PREFIX, strlen(ENTRA_RBAC_CONTROL_PREFIX)) == 0)
		name += strlen(ENTRA_RBAC_CONTROL_PREFIX);
	len = strlen(name);
	if (len == 0 || len > ENTRA_RBAC_MAX_ACTION) {
		entra_set_reason(err, errlen, "action must be 1-%d bytes", ENTRA_RBAC_MAX_ACTION);
		return -EINVAL;
	}
	for (const char *c = name; *c != '\0'; c++) {
		unsigned char u = (unsigned char)*c;

		if (u <= 0x20 || u >= 0x7f) {
			entra_set_reason(err, errlen, "action holds a space, control or non-ASCII byte");
			return -EINVAL;
		}
		if (u == '*') {
			entra_set_reason(err, errlen,
				   "action holds '*': configure concrete actions, roles hold the wildcards");
			return -EINVAL;
		}
	}
	if (strchr(name, '/') == NULL || name[0] == '/' || name[len - 1] == '/') {
		entra_set_reason(err, errlen, "action must look like Provider/type/operation");
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Evaluation                                                          */

static void list_free(struct entra_rbac_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

void entra_rbac_permissions_free(struct entra_rbac_permissions *perms)
{
	if (perms == NULL)
		return;
	for (size_t i = 0; i < perms->count; i++) {
		struct entra_rbac_entry *e = &perms->entries[i];

		list_free(&e->actions);
		list_free(&e->not_actions);
		list_free(&e->data_actions);
		list_free(&e->not_data_actions);
	}
	free(perms->entries);
	perms->entries = NULL;
	perms->count = 0;
}

static const char *list_match(const struct entra_rbac_list *l, const char *action)
{
	for (size_t i = 0; i < l->count; i++)
		if (entra_rbac_action_matches(l->items[i], action))
			return l->items[i];
	return NULL;
}

bool entra_rbac_granted(const struct entra_rbac_permissions *perms, const char *action,
			bool data, const char **pattern, size_t *entry)
{
	if (pattern != NULL)
		*pattern = NULL;
	if (perms == NULL || action == NULL || *action == '\0')
		return false;
	for (size_t i = 0; i < perms->count; i++) {
		const struct entra_rbac_entry *e = &perms->entries[i];
		const char *grant;

		if (e->conditional)
			continue;
		grant = list_match(data ? &e->data_actions : &e->actions, action);
		if (grant == NULL)
			continue;
		/* notActions subtract within this entry only. */
		if (list_match(data ? &e->not_data_actions : &e->not_actions, action) != NULL)
			continue;
		if (pattern != NULL)
			*pattern = grant;
		if (entry != NULL)
			*entry = i;
		return true;
	}
	return false;
}

/* The first configured action of the list that is granted. 1 granted,
 * 0 none, -EINVAL bad list item (err set). */
static int first_granted(const struct entra_rbac_permissions *perms, const char *const *list,
			 const char **which, const char **pattern, size_t *entry, bool *data_out,
			 char *err, size_t errlen)
{
	for (const char *const *it = list; it != NULL && *it != NULL; it++) {
		const char *name = *it;
		bool data = true;
		char why[160];

		if (entra_rbac_action_check(name, why, sizeof(why)) != 0) {
			entra_set_reason(err, errlen, "configured action \"%.200s\": %s", name, why);
			return -EINVAL;
		}
		if (strncmp(name, ENTRA_RBAC_CONTROL_PREFIX, strlen(ENTRA_RBAC_CONTROL_PREFIX)) == 0) {
			name += strlen(ENTRA_RBAC_CONTROL_PREFIX);
			data = false;
		}
		if (entra_rbac_granted(perms, name, data, pattern, entry)) {
			*which = name;
			*data_out = data;
			return 1;
		}
	}
	return 0;
}

static size_t list_len(const char *const *list)
{
	size_t n = 0;

	while (list != NULL && list[n] != NULL)
		n++;
	return n;
}

int entra_rbac_decide(const struct entra_rbac_permissions *perms,
		      const char *const *login_actions, const char *const *admin_actions,
		      struct entra_rbac_decision *out)
{
	const char *lwhich = NULL, *lpat = NULL, *awhich = NULL, *apat = NULL;
	size_t lentry = 0, aentry = 0;
	bool ldata = true, adata = true;
	char err[300];
	int l, a;

	if (out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (list_len(login_actions) == 0) {
		entra_set_reason(out->reason, sizeof(out->reason), "no login action configured");
		return -EINVAL;
	}
	l = first_granted(perms, login_actions, &lwhich, &lpat, &lentry, &ldata, err, sizeof(err));
	if (l < 0) {
		entra_set_reason(out->reason, sizeof(out->reason), "%s", err);
		return -EINVAL;
	}
	a = first_granted(perms, admin_actions, &awhich, &apat, &aentry, &adata, err, sizeof(err));
	if (a < 0) {
		entra_set_reason(out->reason, sizeof(out->reason), "%s", err);
		return -EINVAL;
	}
	if (l == 0) {
		entra_set_reason(out->reason, sizeof(out->reason),
			   "no role grants a login action (first: %s \"%.150s\") in %zu permission entr%s%s",
			   strncmp(login_actions[0], ENTRA_RBAC_CONTROL_PREFIX,
				   strlen(ENTRA_RBAC_CONTROL_PREFIX)) == 0 ? "action" : "dataAction",
			   login_actions[0], perms != NULL ? perms->count : 0,
			   perms != NULL && perms->count == 1 ? "y" : "ies",
			   a == 1 ? "; an admin action alone does not allow login" : "");
		return 0;
	}
	out->login_allowed = true;
	out->admin = a == 1;
	if (out->admin)
		entra_set_reason(out->reason, sizeof(out->reason),
			   "login: %s \"%.100s\" granted by \"%.100s\" (entry %zu); admin: %s \"%.100s\" granted by \"%.100s\" (entry %zu)",
			   ldata ? "dataAction" : "action", lwhich, lpat, lentry,
			   adata ? "dataAction" : "action", awhich, apat, aentry);
	else
		entra_set_reason(out->reason, sizeof(out->reason),
			   "login: %s \"%.150s\" granted by \"%.150s\" (entry %zu); not admin: %s",
			   ldata ? "dataAction" : "action", lwhich, lpat, lentry,
			   list_len(admin_actions) == 0 ? "no admin action configured"
						       : "no admin action granted");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

static int parse_list(struct json_object *entry, const char *key, struct entra_rbac_list *out,
		      char *reason, size_t reason_len)
{
	struct json_object *arr;
	size_t n;

	if (!json_object_object_get_ex(entry, key, &arr))
		return 0; /* absent: empty */
	if (!json_object_is_type(arr, json_type_array)) {
		entra_set_reason(reason, reason_len, "%s is not an array", key);
		return -EINVAL;
	}
	n = json_object_array_length(arr);
	if (n > ENTRA_RBAC_MAX_PATTERNS) {
		entra_set_reason(reason, reason_len, "%s has %zu items (at most %d)", key, n,
			   ENTRA_RBAC_MAX_PATTERNS);
		return -E2BIG;
	}
	if (n == 0)
		return 0;
	out->items = calloc(n, sizeof(char *));
	if (out->items == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(arr, i);
		const char *v;
		size_t len;

		if (!json_object_is_type(s, json_type_string)) {
			entra_set_reason(reason, reason_len, "%s[%zu] is not a string", key, i);
			return -EINVAL;
		}
		v = json_object_get_string(s);
		len = (size_t)json_object_get_string_len(s);
		if (len == 0 || len > ENTRA_RBAC_MAX_ACTION || strlen(v) != len) {
			entra_set_reason(reason, reason_len, "%s[%zu] is empty, too long or holds a NUL",
				   key, i);
			return -EINVAL;
		}
		out->items[i] = strdup(v);
		if (out->items[i] == NULL)
			return -ENOMEM;
		out->count = i + 1;
	}
	return 0;
}

static int parse_entry(struct json_object *obj, struct entra_rbac_entry *e, char *reason,
		       size_t reason_len)
{
	struct json_object *cond;
	int rc;

	if (!json_object_is_type(obj, json_type_object)) {
		entra_set_reason(reason, reason_len, "entry is not an object");
		return -EINVAL;
	}
	rc = parse_list(obj, "actions", &e->actions, reason, reason_len);
	if (rc == 0)
		rc = parse_list(obj, "notActions", &e->not_actions, reason, reason_len);
	if (rc == 0)
		rc = parse_list(obj, "dataActions", &e->data_actions, reason, reason_len);
	if (rc == 0)
		rc = parse_list(obj, "notDataActions", &e->not_data_actions, reason, reason_len);
	if (rc != 0)
		return rc;
	if (json_object_object_get_ex(obj, "condition", &cond) && cond != NULL) {
		if (!json_object_is_type(cond, json_type_string)) {
			entra_set_reason(reason, reason_len, "condition is neither a string nor null");
			return -EINVAL;
		}
		e->conditional = json_object_get_string_len(cond) > 0;
	}
	return 0;
}

int entra_rbac_parse_page(const char *json, size_t len, struct entra_rbac_permissions *out,
			  char **next_link, char *reason, size_t reason_len)
{
	struct json_object *root, *value, *nl;
	const char *why = NULL;
	struct entra_rbac_entry *grown;
	size_t n;
	int rc = 0;

	if (next_link != NULL)
		*next_link = NULL;
	if (json == NULL || out == NULL || next_link == NULL)
		return -EINVAL;
	root = entra_json_parse_ex(json, len, true, &why);
	if (root == NULL) {
		entra_set_reason(reason, reason_len, "not a JSON object (%s)", why != NULL ? why : "?");
		return -EINVAL;
	}
	if (!json_object_object_get_ex(root, "value", &value) ||
	    !json_object_is_type(value, json_type_array)) {
		entra_set_reason(reason, reason_len, "\"value\" missing or not an array");
		rc = -EINVAL;
		goto out;
	}
	if (json_object_object_get_ex(root, "nextLink", &nl) && nl != NULL) {
		if (!json_object_is_type(nl, json_type_string)) {
			entra_set_reason(reason, reason_len, "\"nextLink\" is not a string");
			rc = -EINVAL;
			goto out;
		}
		if (json_object_get_string_len(nl) > MAX_URL ||
		    strlen(json_object_get_string(nl)) != (size_t)json_object_get_string_len(nl)) {
			entra_set_reason(reason, reason_len, "\"nextLink\" too long or holds a NUL");
			rc = -EINVAL;
			goto out;
		}
		if (json_object_get_string_len(nl) > 0) {
			*next_link = strdup(json_object_get_string(nl));
			if (*next_link == NULL) {
				rc = -ENOMEM;
				goto out;
			}
		}
	}
	n = json_object_array_length(value);
	if (n > ENTRA_RBAC_MAX_ENTRIES || out->count + n > ENTRA_RBAC_MAX_ENTRIES) {
		entra_set_reason(reason, reason_len, "more than %d permission entries",
			   ENTRA_RBAC_MAX_ENTRIES);
		rc = -E2BIG;
		goto out;
	}
	if (n > 0) {
		grown = realloc(out->entries, (out->count + n) * sizeof(*grown));
		if (grown == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		out->entries = grown;
	}
	for (size_t i = 0; i < n; i++) {
		struct entra_rbac_entry *e = &out->entries[out->count];
		char sub[200] = "";

		memset(e, 0, sizeof(*e));
		out->count++; /* counted now, so that a failure frees its lists */
		rc = parse_entry(json_object_array_get_idx(value, i), e, sub, sizeof(sub));
		if (rc != 0) {
			entra_set_reason(reason, reason_len, "value[%zu]: %s", i,
				   sub[0] != '\0' ? sub : "out of memory");
			goto out;
		}
	}
out:
	if (rc != 0 && *next_link != NULL) {
		free(*next_link);
		*next_link = NULL;
	}
	json_object_put(root);
	return rc;
}

/* ------------------------------------------------------------------ */
/* URLs                                                                */

static bool scope_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '(' || c == ')' || c == '~' || c == '-';
}

bool entra_rbac_scope_is_valid(const char *scope)
{
	static const char prefix[] = "/subscriptions/";
	const char *p, *seg;
	char guid[37];

	if (scope == NULL || strlen(scope) > ENTRA_RBAC_MAX_SCOPE ||
	    strncasecmp(scope, prefix, sizeof(prefix) - 1) != 0)
		return false;
	p = scope + sizeof(prefix) - 1;
	if (strlen(p) < 36)
		return false;
	memcpy(guid, p, 36);
	guid[36] = '\0';
	if (!entra_is_guid(guid))
		return false;
	p += 36;
	while (*p != '\0') {
		size_t len;

		if (*p != '/')
			return false;
		seg = ++p;
		while (*p != '\0' && *p != '/') {
			if (!scope_char_ok(*p))
				return false;
			p++;
		}
		len = (size_t)(p - seg);
		if (len == 0 || (len == 1 && seg[0] == '.') ||
		    (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return false;
	}
	return true;
}

/* The authority ("host[:port]") of an https URL: its start and length.
 * false when not https or when the URL holds a byte we never send. */
static bool https_authority(const char *url, const char **auth, size_t *len)
{
	static const char scheme[] = "https://";
	const char *a, *end;

	if (url == NULL || strncasecmp(url, scheme, sizeof(scheme) - 1) != 0)
		return false;
	for (const char *c = url; *c != '\0'; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '#' ||
		    *c == '\\')
			return false;
	a = url + sizeof(scheme) - 1;
	end = a + strcspn(a, "/?");
	if (end == a || memchr(a, '@', (size_t)(end - a)) != NULL)
		return false;
	*auth = a;
	*len = (size_t)(end - a);
	return true;
}

/* "host" and "host:443" are the same authority for https. */
static bool same_authority(const char *a, size_t alen, const char *b, size_t blen)
{
	static const char dflt[] = ":443";
	size_t dl = sizeof(dflt) - 1;

	if (alen > dl && memcmp(a + alen - dl, dflt, dl) == 0)
		alen -= dl;
	if (blen > dl && memcmp(b + blen - dl, dflt, dl) == 0)
		blen -= dl;
	return alen == blen && strncasecmp(a, b, alen) == 0;
}

bool entra_rbac_next_link_ok(const char *arm_url, const char *next_link)
{
	const char *a, *b;
	size_t alen, blen;

	if (!https_authority(arm_url, &a, &alen) || !https_authority(next_link, &b, &blen))
		return false;
	if (b[blen] != '/')
		return false; /* a path must follow: no "https://host?x" */
	return same_authority(a, alen, b, blen);
}

/* The base URL without trailing slashes, or NULL if it is not a bare
 * https://authority[/]. */
static char *arm_base(const char *arm_url)
{
	const char *auth;
	size_t alen;
	const char *rest;

	if (!https_authority(arm_url, &auth, &alen))
		return NULL;
	rest = auth + alen;
	while (*rest == '/')
		rest++;
	if (*rest != '\0')
		return NULL;
	return strndup(arm_url, (size_t)(auth + alen - arm_url));
}

/* ------------------------------------------------------------------ */
/* WWW-Authenticate                                                    */

/* Parse the next auth-param: name=token or name="quoted". Returns false
 * at the end or on a syntax error. value is malloc'd. */
static bool next_param(const char **pp, char *name, size_t name_len, char **value)
{
	const char *p = *pp;
	struct entra_buf v;
	size_t n = 0;

	*value = NULL;
	while (*p == ' ' || *p == '\t' || *p == ',')
		p++;
	if (*p == '\0')
		return false;
	while (*p != '\0' && *p != '=' && *p != ' ' && *p != '\t' && *p != ',') {
		if (n + 1 >= name_len)
			return false;
		name[n++] = *p++;
	}
	name[n] = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '=' || n == 0)
		return false;
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	entra_buf_init(&v, 16384);
	if (*p == '"') {
		p++;
		while (*p != '"') {
			if (*p == '\0' || (*p == '\\' && p[1] == '\0')) {
				entra_buf_free(&v);
				return false;
			}
			if (*p == '\\')
				p++;
			if (entra_buf_append(&v, p, 1) != 0) {
				entra_buf_free(&v);
				return false;
			}
			p++;
		}
		p++;
	} else {
		const char *s = p;

		while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		if (entra_buf_append(&v, s, (size_t)(p - s)) != 0) {
			entra_buf_free(&v);
			return false;
		}
	}
	*value = entra_buf_steal(&v);
	entra_buf_free(&v);
	*pp = p;
	return *value != NULL;
}

int entra_rbac_parse_claims_challenge(const char *www_authenticate, char **claims)
{
	const char *p = www_authenticate;
	char *error = NULL, *b64 = NULL, *value;
	unsigned char *dec = NULL;
	size_t dec_len = 0;
	struct json_object *obj;
	char name[64];
	int rc;

	if (claims == NULL)
		return -EINVAL;
	*claims = NULL;
	if (p == NULL)
		return -ENOENT;
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\0'))
		return -ENOENT;
	p += 6;
	while (next_param(&p, name, sizeof(name), &value)) {
		if (strcasecmp(name, "error") == 0 && error == NULL)
			error = value;
		else if (strcasecmp(name, "claims") == 0 && b64 == NULL)
			b64 = value;
		else
			free(value);
	}
	if (error == NULL || strcmp(error, "insufficient_claims") != 0) {
		rc = -ENOENT;
		goto out;
	}
	rc = -EINVAL;
	if (b64 == NULL || *b64 == '\0')
		goto out;
	if (entra_b64_decode(b64, strlen(b64), &dec, &dec_len) != 0 &&
	    entra_b64url_decode(b64, strlen(b64), &dec, &dec_len) != 0)
		goto out;
	if (dec_len == 0 || dec_len > ENTRA_RBAC_MAX_CLAIMS || strlen((char *)dec) != dec_len)
		goto out;
	obj = entra_json_parse_object((const char *)dec, dec_len);
	if (obj == NULL)
		goto out;
	json_object_put(obj);
	*claims = (char *)dec;
	dec = NULL;
	rc = 0;
out:
	free(error);
	free(b64);
	free(dec);
	return rc;
}

/* ------------------------------------------------------------------ */
/* ARM client                                                          */

const char *entra_rbac_result_str(enum entra_rbac_result r)
{
	switch (r) {
	case ENTRA_RBAC_OK: return "ok";
	case ENTRA_RBAC_FORBIDDEN: return "forbidden";
	case ENTRA_RBAC_CHALLENGE: return "claims challenge";
	case ENTRA_RBAC_UNAUTHORIZED: return "unauthorized";
	case ENTRA_RBAC_INVALID: return "invalid request";
	case ENTRA_RBAC_UNAVAILABLE: return "unavailable";
	case ENTRA_RBAC_MALFORMED: return "malformed answer";
	}
	return "unknown";
}

/* ARM's error code ({"error":{"code":"AuthorizationFailed",...}}) when it
 * is a plain identifier, for the log line; "" otherwise. */
static void arm_error_code(const struct entra_http_response *resp, char *out, size_t out_len)
{
	struct json_object *root, *err;
	const char *code;

	out[0] = '\0';
	if (resp->body.data == NULL || resp->body.len == 0)
		return;
	root = entra_json_parse_object(resp->body.data, resp->body.len);
	if (root == NULL)
		return;
	if (json_object_object_get_ex(root, "error", &err) &&
	    json_object_is_type(err, json_type_object)) {
		code = entra_json_get_string(err, "code");
		if (code != NULL && strlen(code) < out_len && strlen(code) <= 64) {
			bool ok = true;

			for (const char *c = code; *c != '\0'; c++)
				if (!scope_char_ok(*c) || *c == '(' || *c == ')' || *c == '~')
					ok = false;
			if (ok)
				snprintf(out, out_len, "%s", code);
		}
	}
	json_object_put(root);
}

static bool token_ok(const char *t)
{
	size_t n;

	if (t == NULL)
		return false;
	n = strlen(t);
	if (n == 0 || n > ENTRA_JWT_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];

		/* base64url, '.', and the few other token68 characters */
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' || c == '='))
			return false;
	}
	return true;
}

enum entra_rbac_result entra_rbac_fetch_permissions(struct entra_http *http,
						    const struct entra_rbac_request *req,
						    struct entra_rbac_permissions *out,
						    char **claims, char *reason, size_t reason_len)
{
	enum entra_rbac_result result = ENTRA_RBAC_UNAVAILABLE;
	struct entra_buf auth, url;
	char *base = NULL, *next = NULL;
	const char *headers[3];
	int max_pages, page;

	if (claims != NULL)
		*claims = NULL;
	if (out != NULL)
		memset(out, 0, sizeof(*out));
	entra_buf_init(&auth, ENTRA_JWT_MAX_LEN + 64);
	entra_buf_init(&url, MAX_URL + 1);
	if (http == NULL || req == NULL || out == NULL) {
		entra_set_reason(reason, reason_len, "missing argument");
		result = ENTRA_RBAC_INVALID;
		goto out;
	}
	base = arm_base(req->arm_url != NULL ? req->arm_url : ENTRA_RBAC_DEFAULT_ARM_URL);
	if (base == NULL) {
		entra_set_reason(reason, reason_len, "ARM URL is not https://host[:port]");
		result = ENTRA_RBAC_INVALID;
		goto out;
	}
	if (!entra_rbac_scope_is_valid(req->scope)) {
		entra_set_reason(reason, reason_len, "scope is not an ARM resource id /subscriptions/<guid>/...");
		result = ENTRA_RBAC_INVALID;
		goto out;
	}
	if (!token_ok(req->access_token)) {
		entra_set_reason(reason, reason_len, "no usable access token");
		result = ENTRA_RBAC_INVALID;
		goto out;
	}
	if (entra_buf_printf(&auth, "Authorization: Bearer %s", req->access_token) != 0 ||
	    entra_buf_printf(&url, "%s%s%s?api-version=%s", base, req->scope, PERMISSIONS_PATH,
			     ENTRA_RBAC_API_VERSION) != 0) {
		entra_set_reason(reason, reason_len, "URL or header too long");
		result = ENTRA_RBAC_INVALID;
		goto out;
	}
	headers[0] = auth.data;
	headers[1] = "Accept: application/json";
	headers[2] = NULL;
	max_pages = req->max_pages > 0 && req->max_pages <= ENTRA_RBAC_MAX_PAGES
			    ? req->max_pages : ENTRA_RBAC_MAX_PAGES;

	for (page = 1;; page++) {
		struct entra_http_response resp;
		char code[80], why[240];
		int rc;

		rc = entra_http_get(http, next != NULL ? next : url.data, headers, &resp);
		if (rc != 0) {
			entra_set_reason(reason, reason_len, "ARM permissions request failed (page %d): %s",
				   page, strerror(-rc));
			entra_http_response_free(&resp);
			result = rc == -E2BIG ? ENTRA_RBAC_MALFORMED : ENTRA_RBAC_UNAVAILABLE;
			goto out;
		}
		arm_error_code(&resp, code, sizeof(code));
		if (resp.status == 401) {
			char *c = NULL;

			rc = entra_rbac_parse_claims_challenge(resp.www_authenticate, &c);
			if (rc == 0) {
				entra_set_reason(reason, reason_len,
					   "ARM asks for more claims (401 insufficient_claims): a new sign-in is needed");
				if (claims != NULL)
					*claims = c;
				else
					free(c);
				result = ENTRA_RBAC_CHALLENGE;
			} else {
				entra_set_reason(reason, reason_len, "ARM rejected the access token (401%s%s%s)",
					   code[0] ? " " : "", code,
					   rc == -EINVAL ? ", unusable claims challenge" : "");
				result = ENTRA_RBAC_UNAUTHORIZED;
			}
			entra_http_response_free(&resp);
			goto out;
		}
		if (resp.status == 403) {
			entra_set_reason(reason, reason_len, "no permissions at this scope (403%s%s)",
				   code[0] ? " " : "", code);
			entra_http_response_free(&resp);
			result = ENTRA_RBAC_FORBIDDEN;
			goto out;
		}
		if (resp.status != 200) {
			entra_set_reason(reason, reason_len, "ARM answered HTTP %ld%s%s (page %d)", resp.status,
				   code[0] ? " " : "", code, page);
			entra_http_response_free(&resp);
			result = ENTRA_RBAC_UNAVAILABLE;
			goto out;
		}
		free(next);
		next = NULL;
		rc = entra_rbac_parse_page(resp.body.data != NULL ? resp.body.data : "", resp.body.len,
					   out, &next, why, sizeof(why));
		entra_http_response_free(&resp);
		if (rc == -ENOMEM) {
			entra_set_reason(reason, reason_len, "out of memory");
			result = ENTRA_RBAC_UNAVAILABLE;
			goto out;
		}
		if (rc != 0) {
			entra_set_reason(reason, reason_len, "unparsable permissions (page %d): %s", page, why);
			result = ENTRA_RBAC_MALFORMED;
			goto out;
		}
		if (next == NULL)
			break;
		if (!entra_rbac_next_link_ok(base, next)) {
			entra_set_reason(reason, reason_len,
				   "nextLink on page %d is not an https URL on the ARM host: refused", page);
			result = ENTRA_RBAC_MALFORMED;
			goto out;
		}
		if (page >= max_pages) {
			entra_set_reason(reason, reason_len, "more than %d pages of permissions", max_pages);
			result = ENTRA_RBAC_MALFORMED;
			goto out;
		}
	}
	entra_set_reason(reason, reason_len, "%zu permission entr%s in %d page%s", out->count,
		   out->count == 1 ? "y" : "ies", page, page == 1 ? "" : "s");
	result = ENTRA_RBAC_OK;
out:
	if (result != ENTRA_RBAC_OK && out != NULL)
		entra_rbac_permissions_free(out);
	free(next);
	free(base);
	entra_buf_free(&auth); /* wipes the token copy */
	entra_buf_free(&url);
	return result;
}

/* ------------------------------------------------------------------ */
/* Decision cache                                                      */

int entra_rbac_cache_binding(const char *arm_url, const char *scope,
			     const char *const *login_actions, const char *const *admin_actions,
			     char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;
	int ok;

	if (out == NULL || scope == NULL)
		return -EINVAL;
	out[0] = '\0';
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return -ENOMEM;
	/* Each field is followed by a NUL, lists end with an extra one: no
	 * two different inputs hash the same bytes. */
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
	if (arm_url == NULL)
		arm_url = ENTRA_RBAC_DEFAULT_ARM_URL;
	ok = ok && EVP_DigestUpdate(ctx, arm_url, strlen(arm_url) + 1) == 1;
	ok = ok && EVP_DigestUpdate(ctx, scope, strlen(scope) + 1) == 1;
	for (const char *const *it = login_actions; ok && it != NULL && *it != NULL; it++)
		ok = EVP_DigestUpdate(ctx, *it, strlen(*it) + 1) == 1;
	ok = ok && EVP_DigestUpdate(ctx, "", 1) == 1;
	for (const char *const *it = admin_actions; ok && it != NULL && *it != NULL; it++)
		ok = EVP_DigestUpdate(ctx, *it, strlen(*it) + 1) == 1;
	ok = ok && EVP_DigestUpdate(ctx, "", 1) == 1;
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -EIO;
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int cache_name(const char *oid, char name[48])
{
	if (oid == NULL || !entra_is_guid(oid))
		return -EINVAL;
	for (size_t i = 0; i < 36; i++)
		name[i] = (char)lower((unsigned char)oid[i]);
	memcpy(name + 36, ".json", 6);
	return 0;
}

static bool binding_ok(const char *b)
{
	if (b == NULL || strlen(b) != 64)
		return false;
	for (const char *c = b; *c != '\0'; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

/* Open (creating it when asked) cache_dir/rbac. fd or -errno. */
static int cache_dir_open(const char *cache_dir, bool create)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int top, dfd;

	if (cache_dir == NULL || cache_dir[0] != '/')
		return -EINVAL;
	top = entra_dir_open_trusted(cache_dir, uid);
	if (top == -ENOENT && create)
		top = entra_dir_open_or_create(cache_dir, 0700, uid, gid);
	if (top < 0)
		return top;
	/* The subdirectory is created in both cases: a missing one is a miss
	 * anyway, and its owner and mode are checked either way. */
	dfd = entra_dir_open_or_create_at(top, CACHE_DIR_NAME, 0700, uid, gid);
	close(top);
	return dfd;
}

int entra_rbac_cache_store(const char *cache_dir, const char *oid, const char *binding,
			   const struct entra_rbac_decision *decision, int64_t now, int ttl)
{
	char name[48], text[512];
	int dfd, n, rc;

	if (decision == NULL || !binding_ok(binding) || ttl < 1 || ttl > ENTRA_RBAC_CACHE_MAX_TTL ||
	    now <= 0 || cache_name(oid, name) != 0)
		return -EINVAL;
	n = snprintf(text, sizeof(text),
		     "{\"v\":1,\"oid\":\"%.36s\",\"binding\":\"%s\",\"login_allowed\":%s,"
		     "\"admin\":%s,\"created\":%lld,\"expires\":%lld}\n",
		     name, binding, decision->login_allowed ? "true" : "false",
		     decision->login_allowed && decision->admin ? "true" : "false", (long long)now,
		     (long long)now + ttl);
	if (n < 0 || (size_t)n >= sizeof(text))
		return -EINVAL;
	dfd = cache_dir_open(cache_dir, true);
	if (dfd < 0)
		return dfd;
	rc = entra_write_file_atomic(dfd, name, text, (size_t)n, 0600, geteuid(), getegid());
	close(dfd);
	return rc;
}

static int get_bool(struct json_object *o, const char *key, bool *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
		return -EINVAL;
	*out = json_object_get_boolean(v);
	return 0;
}

int entra_rbac_cache_load(const char *cache_dir, const char *oid, const char *binding,
			  int64_t now, struct entra_rbac_decision *decision)
{
	struct json_object *o = NULL;
	struct entra_buf b;
	char name[48];
	const char *s;
	int64_t v = 0, created = 0, expires = 0;
	bool login = false, admin = false;
	int dfd, rc;

	if (decision == NULL || !binding_ok(binding) || cache_name(oid, name) != 0)
		return -EINVAL;
	memset(decision, 0, sizeof(*decision));
	dfd = cache_dir_open(cache_dir, false);
	if (dfd < 0)
		return dfd;
	rc = entra_read_file_trusted(dfd, name, MAX_CACHE_FILE, geteuid(), &b);
	close(dfd);
	if (rc != 0)
		return rc;
	rc = -EINVAL;
	o = entra_json_parse_object(b.data, b.len);
	if (o == NULL)
		goto out;
	if (entra_json_get_int64(o, "v", &v) != 0 || v != 1)
		goto out;
	s = entra_json_get_string(o, "oid");
	if (s == NULL || strncmp(s, name, 36) != 0 || strlen(s) != 36)
		goto out;
	s = entra_json_get_string(o, "binding");
	if (s == NULL || !binding_ok(s))
		goto out;
	if (entra_json_get_int64(o, "created", &created) != 0 ||
	    entra_json_get_int64(o, "expires", &expires) != 0 ||
	    get_bool(o, "login_allowed", &login) != 0 || get_bool(o, "admin", &admin) != 0)
		goto out;
	if (expires <= created || expires - created > ENTRA_RBAC_CACHE_MAX_TTL ||
	    (admin && !login))
		goto out;
	rc = -ENOENT; /* a well-formed entry that does not apply: a miss */
	if (strcmp(s, binding) != 0 || now >= expires || created > now + CACHE_FUTURE_SKEW)
		goto out;
	decision->login_allowed = login;
	decision->admin = admin;
	entra_set_reason(decision->reason, sizeof(decision->reason),
		   "cached decision (%lld s old, %lld s left): login %s, admin %s",
		   (long long)(now - created), (long long)(expires - now), login ? "yes" : "no",
		   admin ? "yes" : "no");
	rc = 0;
out:
	if (o != NULL)
		json_object_put(o);
	entra_buf_free(&b);
	return rc;
}

int entra_rbac_cache_remove(const char *cache_dir, const char *oid)
{
	char name[48];
	int dfd, rc = 0;

	if (cache_name(oid, name) != 0)
		return -EINVAL;
	dfd = cache_dir_open(cache_dir, false);
	if (dfd == -ENOENT)
		return 0;
	if (dfd < 0)
		return dfd;
	if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT)
		rc = -errno;
	close(dfd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* ARM access token                                                    */

/* A key issuer of the v2.0 form for this tenant (Entra publishes its keys
 * with "https://login.microsoftonline.com/{tenantid}/v2.0"): it describes
 * the v2 issuer of the same key, not a restriction v1 tokens can meet. */
static bool v2_key_issuer(const char *issuer, const char *tid)
{
	size_t n, tl;
	const char *tail;

	if (issuer == NULL)
		return false;
	n = strlen(issuer);
	tail = "/{tenantid}/v2.0";
	if (n > strlen(tail) && strcmp(issuer + n - strlen(tail), tail) == 0)
		return true;
	tl = strlen(tid);
	if (n > tl + 6 && strcmp(issuer + n - 5, "/v2.0") == 0 && issuer[n - 6 - tl] == '/' &&
	    strncasecmp(issuer + n - 5 - tl, tid, tl) == 0)
		return true;
	return false;
}

static bool array_contains(struct json_object *claims, const char *key, const char *value)
{
	struct json_object *arr = entra_json_get_string_array(claims, key);

	if (arr == NULL)
		return false;
	for (size_t i = 0; i < json_object_array_length(arr); i++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(arr, i)), value) == 0)
			return true;
	return false;
}

enum entra_rbac_token_result
entra_rbac_check_access_token_claims(const char *token, const struct entra_jwks *jwks,
				     const struct entra_rbac_token_expect *expect,
				     enum entra_jwt_status *jwt_status,
				     struct json_object **claims_out,
				     char *reason, size_t reason_len)
{
	static const char *const required[] = { "oid", NULL };
	struct entra_jwt_expect je;
	struct entra_jwks view = { NULL, 0 };
	struct json_object *claims = NULL;
	enum entra_jwt_status st = ENTRA_JWT_MALFORMED;
	enum entra_rbac_token_result res = ENTRA_RBAC_TOKEN_INVALID;
	char issuer[80], why[300];
	const char *oid;

	if (claims_out != NULL)
		*claims_out = NULL;
	if (jwt_status != NULL)
		*jwt_status = ENTRA_JWT_MALFORMED;
	if (token == NULL || jwks == NULL || expect == NULL || expect->tenant_id == NULL ||
	    !entra_is_guid(expect->tenant_id)) {
		entra_set_reason(reason, reason_len, "ARM token check: missing token, keys or tenant GUID");
		return ENTRA_RBAC_TOKEN_INVALID;
	}
	snprintf(issuer, sizeof(issuer), "https://sts.windows.net/%s/", expect->tenant_id);
	/* A view of the keys without their v2.0 issuer restriction. */
	view.keys = calloc(jwks->count ? jwks->count : 1, sizeof(*view.keys));
	if (view.keys == NULL) {
		entra_set_reason(reason, reason_len, "out of memory");
		return ENTRA_RBAC_TOKEN_INVALID;
	}
	view.count = jwks->count;
	for (size_t i = 0; i < jwks->count; i++) {
		view.keys[i] = jwks->keys[i];
		if (v2_key_issuer(jwks->keys[i].issuer, expect->tenant_id))
			view.keys[i].issuer = NULL;
	}
	memset(&je, 0, sizeof(je));
	je.issuer = issuer;
	je.audience = expect->audience != NULL ? expect->audience : ENTRA_RBAC_DEFAULT_AUDIENCE;
	je.tenant_id = expect->tenant_id;
	je.required_claims = required;
	je.now = expect->now;
	je.clock_skew = expect->clock_skew;
	st = entra_jwt_verify(token, &view, &je, &claims, why, sizeof(why));
	free(view.keys); /* borrowed members: nothing else to free */
	if (jwt_status != NULL)
		*jwt_status = st;
	if (st != ENTRA_JWT_OK) {
		entra_set_reason(reason, reason_len, "ARM access token rejected: %s: %s",
			   entra_jwt_status_str(st), why);
		return ENTRA_RBAC_TOKEN_INVALID;
	}
	oid = entra_json_get_string(claims, "oid");
	if (expect->oid != NULL && !entra_streq_nocase(oid, expect->oid)) {
		entra_set_reason(reason, reason_len, "ARM access token is for another person (oid differs)");
		res = ENTRA_RBAC_TOKEN_OTHER_USER;
		goto out;
	}
	if (expect->require_mfa && !array_contains(claims, "amr", "mfa")) {
		entra_set_reason(reason, reason_len,
			   "multi-factor authentication required: the token's amr %s \"mfa\"",
			   entra_json_get_string_array(claims, "amr") != NULL ? "lacks" :
			   "is missing, so it lacks");
		res = ENTRA_RBAC_TOKEN_NO_MFA;
		goto out;
	}
	if (expect->required_acrs != NULL && expect->required_acrs[0] != '\0' &&
	    !array_contains(claims, "acrs", expect->required_acrs)) {
		entra_set_reason(reason, reason_len,
			   "authentication context \"%.32s\" required: the token's acrs %s it",
			   expect->required_acrs,
			   entra_json_get_string_array(claims, "acrs") != NULL ? "lacks" :
			   "is missing, so it lacks");
		res = ENTRA_RBAC_TOKEN_NO_ACRS;
		goto out;
	}
	entra_set_reason(reason, reason_len, "ARM access token valid%s%s%s",
		   expect->require_mfa ? ", mfa" : "",
		   expect->required_acrs != NULL && expect->required_acrs[0] ? ", acrs " : "",
		   expect->required_acrs != NULL && expect->required_acrs[0] ? expect->required_acrs : "");
	res = ENTRA_RBAC_TOKEN_OK;
	if (claims_out != NULL) {
		*claims_out = claims;
		claims = NULL;
	}
out:
	if (claims != NULL)
		json_object_put(claims);
	return res;
}
