#include "config.h"
#include "tokens.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "names.h"

/* Longest token we accept: Entra tokens with many claims run to a few KB. */
#define TOKEN_MAX (64 * 1024)
/* Longest scope string and longest token lifetime we accept. */
#define SCOPE_MAX 4096
#define LIFETIME_MAX (366LL * 24 * 3600)
/* expires_in is only RECOMMENDED (RFC 6749 §5.1): assume an hour. */
#define DEFAULT_EXPIRES_IN 3600
#define FORM_MAX (64 * 1024)

/* -EINVAL when present with the wrong type or unsafe, 0 otherwise; an
 * empty string counts as absent (IMDS sends "refresh_token": ""). */
static int optional_string(struct json_object *obj, const char *key, size_t max, char **out)
{
	struct json_object *v;
	const char *s;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	s = json_object_get_string(v);
	if (s[0] == '\0')
		return 0;
	if (!entra_value_is_safe(s, max))
		return -EINVAL;
	*out = strdup(s);
	return *out == NULL ? -ENOMEM : 0;
}

static int two_digits(const char *s, int *out)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return -EINVAL;
	*out = (s[0] - '0') * 10 + (s[1] - '0');
	return 0;
}

/* The legacy App Service / Azure ML form "MM/DD/YYYY HH:MM:SS +00:00"
 * (PROTOCOL.md §4b, §4c). */
static int parse_legacy_date(const char *s, time_t *out)
{
	struct tm tm;
	int mon, day, y1, y2, hh, mm, ss, oh, om, sign;
	time_t t;

	if (s == NULL || strlen(s) != 26 || s[2] != '/' || s[5] != '/' || s[10] != ' ' ||
	    s[13] != ':' || s[16] != ':' || s[19] != ' ' || (s[20] != '+' && s[20] != '-') ||
	    s[23] != ':')
		return -EINVAL;
	if (two_digits(s, &mon) || two_digits(s + 3, &day) || two_digits(s + 6, &y1) ||
	    two_digits(s + 8, &y2) || two_digits(s + 11, &hh) || two_digits(s + 14, &mm) ||
	    two_digits(s + 17, &ss) || two_digits(s + 21, &oh) || two_digits(s + 24, &om))
		return -EINVAL;
	if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 ||
	    oh > 14 || om > 59)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y1 * 100 + y2 - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	t = timegm(&tm);
	if (t == (time_t)-1 || tm.tm_mday != day)
		return -EINVAL;
	sign = s[20] == '+' ? 1 : -1;
	*out = t - sign * (time_t)(oh * 3600 + om * 60);
	return 0;
}

/* expires_in (int or string) and expires_on (epoch int/string or legacy
 * date): expires_on wins when present, else now + expires_in, else an hour. */
static int parse_lifetime(struct json_object *obj, time_t now, struct entra_token_response *out)
{
	int64_t in = 0, on = 0;
	int rc_in, rc_on;

	rc_in = entra_json_get_int64(obj, "expires_in", &in);
	if (rc_in == -EINVAL || (rc_in == 0 && (in <= 0 || in > LIFETIME_MAX)))
		return -EINVAL;
	rc_on = entra_json_get_int64(obj, "expires_on", &on);
	if (rc_on == -EINVAL) {
		time_t t;

		if (parse_legacy_date(entra_json_get_string(obj, "expires_on"), &t) < 0)
			return -EINVAL;
		on = (int64_t)t;
		rc_on = 0;
	}
	if (rc_on == 0) {
		if (on <= (int64_t)now || on - (int64_t)now > LIFETIME_MAX)
			return -EINVAL;
		out->expires_on = (time_t)on;
		out->expires_in = rc_in == 0 ? in : on - (int64_t)now;
		return 0;
	}
	out->expires_in = rc_in == 0 ? in : DEFAULT_EXPIRES_IN;
	out->expires_on = now + (time_t)out->expires_in;
	return 0;
}

enum entra_token_result entra_token_response_parse(long status, const char *body, size_t len,
						   time_t now, struct entra_token_response *out,
						   struct entra_oauth_error *err)
{
	enum entra_token_result result = ENTRA_TOKEN_MALFORMED;
	struct json_object *obj;
	const char *type;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	if (body == NULL)
		return ENTRA_TOKEN_MALFORMED;
	obj = entra_json_parse_object(body, len);
	if (obj == NULL)
		return ENTRA_TOKEN_MALFORMED;

	/* An error body is an error whatever the status (Entra and others
	 * have been seen to send errors with 200). */
	rc = entra_oauth_error_parse(obj, err);
	if (rc == 0) {
		result = ENTRA_TOKEN_ERROR;
		goto done;
	}
	if (rc != -ENOENT || status < 200 || status > 299)
		goto done;

	type = entra_json_get_string(obj, "token_type");
	if (type == NULL || !entra_streq_nocase(type, "Bearer"))
		goto done;
	if (optional_string(obj, "access_token", TOKEN_MAX, &out->access_token) < 0 ||
	    out->access_token == NULL)
		goto done;
	if (optional_string(obj, "refresh_token", TOKEN_MAX, &out->refresh_token) < 0 ||
	    optional_string(obj, "id_token", TOKEN_MAX, &out->id_token) < 0 ||
	    optional_string(obj, "scope", SCOPE_MAX, &out->scope) < 0)
		goto done;
	out->token_type = strdup(type);
	if (out->token_type == NULL)
		goto done;
	if (parse_lifetime(obj, now, out) < 0)
		goto done;
	result = ENTRA_TOKEN_OK;
done:
	if (result != ENTRA_TOKEN_OK)
		entra_token_response_free(out);
	if (result != ENTRA_TOKEN_ERROR)
		entra_oauth_error_free(err);
	entra_json_wipe_member(obj, "access_token");
	entra_json_wipe_member(obj, "refresh_token");
	entra_json_wipe_member(obj, "id_token");
	json_object_put(obj);
	return result;
}

void entra_token_response_free(struct entra_token_response *tok)
{
	if (tok == NULL)
		return;
	entra_free_secret(tok->access_token);
	entra_free_secret(tok->refresh_token);
	entra_free_secret(tok->id_token);
	free(tok->token_type);
	free(tok->scope);
	memset(tok, 0, sizeof(*tok));
}

enum entra_token_result entra_token_refresh(struct entra_http *http, const char *token_endpoint,
					   const char *client_id, const char *refresh_token,
					   const char *scope, const char *claims, time_t now,
					   struct entra_token_response *out,
					   struct entra_oauth_error *err)
{
	static const char *const headers[] = { "Accept: application/json", NULL };
	struct entra_http_response resp;
	struct entra_buf form;
	enum entra_token_result result;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	if (http == NULL || token_endpoint == NULL || client_id == NULL ||
	    refresh_token == NULL || refresh_token[0] == '\0' || scope == NULL)
		return ENTRA_TOKEN_MALFORMED;

	entra_buf_init(&form, FORM_MAX);
	rc = entra_form_add(&form, "grant_type", "refresh_token");
	if (rc == 0)
		rc = entra_form_add(&form, "client_id", client_id);
	if (rc == 0)
		rc = entra_form_add(&form, "refresh_token", refresh_token);
	if (rc == 0)
		rc = entra_form_add(&form, "scope", scope);
	if (rc == 0 && claims != NULL && claims[0] != '\0')
		rc = entra_form_add(&form, "claims", claims);
	if (rc == 0)
		rc = entra_form_add(&form, "client_info", "1");
	if (rc < 0) {
		entra_buf_free(&form);
		return ENTRA_TOKEN_MALFORMED;
	}

	/* The http layer logs transport failures with their reason. */
	rc = entra_http_post_form(http, token_endpoint, form.data, headers, &resp);
	entra_buf_free(&form);
	if (rc < 0)
		result = ENTRA_TOKEN_MALFORMED;
	else
		result = entra_token_response_parse(resp.status, resp.body.data, resp.body.len,
						    now, out, err);
	entra_http_response_free(&resp);
	return result;
}
