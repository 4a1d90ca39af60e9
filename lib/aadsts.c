#include "config.h"
#include "aadsts.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "names.h"

/* Every field of an error body is untrusted and copied with this bound. */
#define FIELD_MAX 4096

/* Copy at most FIELD_MAX bytes, cutting at a UTF-8 character boundary so
 * that a truncated field stays valid text. */
static char *bounded_copy(const char *s)
{
	size_t len;
	char *out;

	if (s == NULL)
		return NULL;
	len = strnlen(s, FIELD_MAX + 1);
	if (len > FIELD_MAX) {
		len = FIELD_MAX;
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
	}
	out = malloc(len + 1);
	if (out == NULL)
		return NULL;
	memcpy(out, s, len);
	out[len] = '\0';
	return out;
}

/* A member that must be a string when present: copied, or left NULL
 * when absent or of another type (optional fields never fail the parse). */
static int copy_member(struct json_object *body, const char *key, char **out)
{
	const char *s = entra_json_get_string(body, key);

	*out = NULL;
	if (s == NULL)
		return 0;
	*out = bounded_copy(s);
	return *out == NULL ? -ENOMEM : 0;
}

/* Decimal digits only, 1..9 of them: AADSTS codes are at most 7 digits. */
static bool parse_code(const char *s, size_t n, long *out)
{
	long v = 0;

	if (n == 0 || n > 9)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static void parse_error_codes(struct json_object *body, struct entra_oauth_error *err)
{
	struct json_object *arr, *item;
	size_t n;

	if (!json_object_object_get_ex(body, "error_codes", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return;
	n = json_object_array_length(arr);
	for (size_t i = 0; i < n && err->code_count < ENTRA_OAUTH_MAX_CODES; i++) {
		long code;

		item = json_object_array_get_idx(arr, i);
		if (json_object_is_type(item, json_type_int)) {
			int64_t v = json_object_get_int64(item);

			if (v <= 0 || v > 999999999)
				continue;
			err->codes[err->code_count++] = (long)v;
		} else if (json_object_is_type(item, json_type_string)) {
			const char *s = json_object_get_string(item);

			if (parse_code(s, strlen(s), &code) && code > 0)
				err->codes[err->code_count++] = code;
		}
	}
}

/* "AADSTS70011: ..." in the description: the first such code. */
static void parse_description_code(struct entra_oauth_error *err)
{
	const char *p, *d = err->error_description;
	size_t n;
	long code;

	if (d == NULL || err->code_count > 0)
		return;
	p = strstr(d, "AADSTS");
	if (p == NULL)
		return;
	p += 6;
	for (n = 0; p[n] >= '0' && p[n] <= '9'; n++)
		;
	if (parse_code(p, n, &code) && code > 0)
		err->codes[err->code_count++] = code;
}

int entra_oauth_error_parse(struct json_object *body, struct entra_oauth_error *err)
{
	struct json_object *e;
	int rc;

	memset(err, 0, sizeof(*err));
	if (body == NULL || !json_object_is_type(body, json_type_object))
		return -EINVAL;
	if (!json_object_object_get_ex(body, "error", &e))
		return -ENOENT;
	if (!json_object_is_type(e, json_type_string))
		return -EINVAL;
	err->error = bounded_copy(json_object_get_string(e));
	if (err->error == NULL)
		return -ENOMEM;
	rc = copy_member(body, "error_description", &err->error_description);
	if (rc == 0)
		rc = copy_member(body, "suberror", &err->suberror);
	if (rc == 0)
		rc = copy_member(body, "claims", &err->claims);
	if (rc == 0)
		rc = copy_member(body, "trace_id", &err->trace_id);
	if (rc == 0)
		rc = copy_member(body, "correlation_id", &err->correlation_id);
	if (rc < 0) {
		entra_oauth_error_free(err);
		return rc;
	}
	parse_error_codes(body, err);
	parse_description_code(err);
	return 0;
}

void entra_oauth_error_free(struct entra_oauth_error *err)
{
	if (err == NULL)
		return;
	free(err->error);
	free(err->error_description);
	free(err->suberror);
	free(err->claims);
	free(err->trace_id);
	free(err->correlation_id);
	memset(err, 0, sizeof(*err));
}

struct code_message {
	long code;
	const char *text;
};

/* By AADSTS code: what happened, then what to do. Sources: Entra's
 * reference-error-codes.md (PROTOCOL.md §1d, §3a). */
static const struct code_message code_messages[] = {
	{ 50005, "Sign-in with a device code is blocked by a conditional access policy "
		 "for this device platform. Ask your administrator to allow the device-code "
		 "flow for this login, or to exclude it from that policy." },
	{ 50020, "Your account comes from an identity provider that is not part of this "
		 "organization's tenant. Sign in with an account of the organization, or ask "
		 "your administrator to invite your account as a guest." },
	{ 50034, "This account does not exist in the organization's directory. Check the "
		 "account you signed in with in the browser, and log in again." },
	{ 50053, "Your account is locked after too many sign-in attempts, or sign-in came "
		 "from a blocked address. Wait and try again later, or ask your administrator." },
	{ 50055, "Your password has expired. Change it (for example at https://aka.ms/sspr), "
		 "then log in again." },
	{ 50057, "Your account is disabled. Ask your administrator to enable it." },
	{ 50076, "Multi-factor authentication is required for this sign-in. Log in again "
		 "and complete the multi-factor authentication step in the browser." },
	{ 50078, "Your multi-factor authentication has expired. Log in again and complete "
		 "multi-factor authentication in the browser." },
	{ 50079, "You must register for multi-factor authentication before you can sign in. "
		 "Register at https://aka.ms/mfasetup, then log in again." },
	{ 50097, "Conditional access requires device authentication for this sign-in. Sign "
		 "in from a registered device, or ask your administrator." },
	{ 50105, "Your account is not assigned to this application. Ask your administrator "
		 "to assign you (or a group you belong to) to the application." },
	{ 50126, "Invalid username or password. Log in again with the correct password." },
	{ 50158, "An external security challenge was not satisfied. Log in again and "
		 "complete every step shown in the browser." },
	{ 50173, "A fresh sign-in is needed: the earlier grant was revoked or issued before "
		 "a credential change. Log in again." },
	{ 53000, "Conditional access requires a compliant (managed) device for this sign-in. "
		 "Sign in in the browser of a device your organization manages, or ask your "
		 "administrator." },
	{ 53001, "Conditional access requires a domain-joined device for this sign-in. Sign "
		 "in in the browser of a domain-joined device, or ask your administrator." },
	{ 53002, "Conditional access requires an approved client application for this "
		 "sign-in. Ask your administrator which application to use." },
	{ 53003, "Access was blocked by a conditional access policy. Ask your administrator; "
		 "the system log holds the trace ID and the policy IDs they need." },
	{ 65001, "The application has not been granted consent to sign you in. Ask your "
		 "administrator to grant admin consent for the application." },
	{ 70016, "Waiting for you to finish signing in in the browser." },
	{ 70018, "The sign-in service did not recognize the device code. Log in again to "
		 "get a new code." },
	{ 70019, "The code expired before the sign-in was completed. Log in again and enter "
		 "the new code before the time shown." },
	{ 70043, "Your sign-in is older than your organization's sign-in frequency policy "
		 "allows. Log in again." },
	{ 90120, "This device code was already used (approved or declined). Log in again to "
		 "get a new code." },
	{ 530032, "The request was blocked by a security policy of your organization. Ask "
		  "your administrator, giving the trace ID from the system log." },
	{ 530035, "The request was blocked by your organization's security defaults. Ask "
		  "your administrator, giving the trace ID from the system log." },
	{ 700016, "The application was not found in the tenant: the login is misconfigured. "
		  "The administrator must check client_id and tenant in the pam_entra "
		  "configuration." },
	{ 700082, "Your sign-in expired after a period of inactivity (refresh token "
		  "expired). Log in again." },
	{ 7000218, "The application registration does not allow public client flows. The "
		   "administrator must enable \"Allow public client flows\" in the app "
		   "registration's Authentication settings." },
};

struct error_message {
	const char *error;
	const char *text;
};

static const struct error_message error_messages[] = {
	{ "authorization_pending", "Waiting for you to finish signing in in the browser." },
	{ "slow_down", "The sign-in service asked to be polled more slowly; still waiting "
		       "for you to finish signing in in the browser." },
	{ "authorization_declined", "The sign-in was declined in the browser. Log in again "
				    "if this was a mistake; if you did not start this login, "
				    "tell your administrator." },
	{ "access_denied", "The sign-in was denied. Log in again if this was a mistake; if "
			   "you did not start this login, tell your administrator." },
	{ "expired_token", "The code expired before the sign-in was completed. Log in again "
			   "and enter the new code before the time shown." },
	{ "bad_verification_code", "The sign-in service did not recognize the device code. "
				   "Log in again to get a new code." },
	{ "invalid_grant", "The sign-in grant was rejected (expired, revoked or blocked by "
			   "policy). Log in again; if it keeps failing, ask your "
			   "administrator, giving the trace ID from the system log." },
	{ "invalid_client", "The sign-in service rejected this application: the login is "
			    "misconfigured. Ask your administrator to check client_id and the "
			    "app registration." },
	{ "unauthorized_client", "This application is not allowed to use this sign-in "
				 "method. Ask your administrator to check the app "
				 "registration (public client flows)." },
	{ "invalid_request", "The sign-in service rejected the request as invalid. Ask your "
			     "administrator to check the pam_entra configuration." },
	{ "invalid_scope", "The requested permissions (scope) are not valid for this "
			   "application. Ask your administrator to check the configured "
			   "scopes." },
	{ "interaction_required", "Additional verification is required. Log in again and "
				  "complete every step shown in the browser." },
	{ "consent_required", "The application has not been granted consent to sign you in. "
			      "Ask your administrator to grant admin consent for the "
			      "application." },
	{ "temporarily_unavailable", "The sign-in service is temporarily unavailable. Wait a "
				     "minute and log in again." },
	{ "server_error", "The sign-in service had an internal error. Wait a minute and log "
			  "in again." },
};

/* An OAuth error name fit to show: lower-case letters and '_' only. */
static bool error_name_ok(const char *s)
{
	size_t n;

	if (s == NULL)
		return false;
	for (n = 0; s[n] != '\0'; n++)
		if (n >= 64 || !((s[n] >= 'a' && s[n] <= 'z') || s[n] == '_'))
			return false;
	return n > 0;
}

const char *entra_oauth_error_message(const struct entra_oauth_error *err)
{
	/* Only texts naming an unknown code are formatted; per thread so that
	 * concurrent PAM transactions in one process do not share them. */
	static _Thread_local char formatted[512];
	const char *text = NULL;
	size_t i, j;

	if (err == NULL)
		return "Sign-in failed. Log in again.";
	for (i = 0; i < err->code_count; i++)
		for (j = 0; j < sizeof(code_messages) / sizeof(code_messages[0]); j++)
			if (code_messages[j].code == err->codes[i])
				return code_messages[j].text;
	for (j = 0; err->error != NULL && j < sizeof(error_messages) / sizeof(error_messages[0]); j++)
		if (strcmp(error_messages[j].error, err->error) == 0)
			text = error_messages[j].text;
	if (err->code_count > 0) {
		/* A code we have no text for: name it, so the admin can look it up. */
		snprintf(formatted, sizeof(formatted),
			 "%s (Entra error AADSTS%ld: your administrator can look it up at "
			 "https://login.microsoftonline.com/error?code=%ld)",
			 text != NULL ? text : "Sign-in failed.", err->codes[0], err->codes[0]);
		return formatted;
	}
	if (text != NULL)
		return text;
	if (error_name_ok(err->error)) {
		snprintf(formatted, sizeof(formatted),
			 "Sign-in failed (error %s). Log in again; if it keeps failing, ask "
			 "your administrator, giving the trace ID from the system log.",
			 err->error);
		return formatted;
	}
	return "Sign-in failed. Log in again; if it keeps failing, ask your administrator, "
	       "giving the trace ID from the system log.";
}

/* Appends to a fixed buffer, silently truncating; always NUL-terminated. */
struct line {
	char *out;
	size_t len;
	size_t used;
};

static void line_add(struct line *l, const char *s, size_t n)
{
	size_t room;

	if (l->len == 0 || l->used >= l->len - 1)
		return;
	room = l->len - 1 - l->used;
	if (n > room)
		n = room;
	memcpy(l->out + l->used, s, n);
	l->used += n;
	l->out[l->used] = '\0';
}

static void line_str(struct line *l, const char *s)
{
	line_add(l, s, strlen(s));
}

/* A token-like field (error name, suberror): [A-Za-z0-9_.:-], at most 64
 * bytes; anything else becomes '?' so the line cannot be forged. */
static void line_token(struct line *l, const char *key, const char *value)
{
	char tmp[65];
	size_t n;

	if (value == NULL || value[0] == '\0')
		return;
	for (n = 0; n < sizeof(tmp) - 1 && value[n] != '\0'; n++) {
		unsigned char c = (unsigned char)value[n];

		tmp[n] = (char)(((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				 (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
				 c == '-') ? c : '?');
	}
	tmp[n] = '\0';
	if (l->used > 0)
		line_str(l, " ");
	line_str(l, key);
	line_str(l, "=");
	line_str(l, tmp);
}

static void line_guid(struct line *l, const char *key, const char *value)
{
	if (!entra_is_guid(value))
		return;
	line_str(l, " ");
	line_str(l, key);
	line_str(l, "=");
	line_str(l, value);
}

/* claims = {"access_token":{"capolids":{"essential":true,"values":[guid...]}}} */
static void line_capolids(struct line *l, const char *claims)
{
	struct json_object *root, *at, *cap, *values;
	size_t n, shown = 0;

	if (claims == NULL)
		return;
	root = entra_json_parse_object(claims, strlen(claims));
	if (root == NULL)
		return;
	if (json_object_object_get_ex(root, "access_token", &at) &&
	    json_object_is_type(at, json_type_object) &&
	    json_object_object_get_ex(at, "capolids", &cap) &&
	    json_object_is_type(cap, json_type_object) &&
	    json_object_object_get_ex(cap, "values", &values) &&
	    json_object_is_type(values, json_type_array)) {
		n = json_object_array_length(values);
		for (size_t i = 0; i < n && shown < ENTRA_OAUTH_MAX_CODES; i++) {
			struct json_object *v = json_object_array_get_idx(values, i);
			const char *s;

			if (!json_object_is_type(v, json_type_string))
				continue;
			s = json_object_get_string(v);
			if (!entra_is_guid(s))
				continue;
			line_str(l, shown == 0 ? " capolids=" : ",");
			line_str(l, s);
			shown++;
		}
	}
	json_object_put(root);
}

/* The description's first line, printable ASCII only, quotes neutralised,
 * at most 160 bytes: enough for "AADSTS53003: Access has been blocked...". */
static void line_description(struct line *l, const char *d)
{
	char tmp[161];
	size_t n;

	if (d == NULL || d[0] == '\0')
		return;
	for (n = 0; n < sizeof(tmp) - 1 && d[n] != '\0' && d[n] != '\r' && d[n] != '\n'; n++) {
		unsigned char c = (unsigned char)d[n];

		if (c < 0x20 || c >= 0x7f)
			tmp[n] = '?';
		else if (c == '"' || c == '\\')
			tmp[n] = '\'';
		else
			tmp[n] = (char)c;
	}
	tmp[n] = '\0';
	line_str(l, " description=\"");
	line_str(l, tmp);
	line_str(l, "\"");
}

void entra_oauth_error_log_reason(const struct entra_oauth_error *err, char *out, size_t len)
{
	struct line l = { out, len, 0 };
	char num[24];

	if (out == NULL || len == 0)
		return;
	out[0] = '\0';
	if (err == NULL)
		return;
	line_token(&l, "error", err->error != NULL ? err->error : "(none)");
	for (size_t i = 0; i < err->code_count && i < ENTRA_OAUTH_MAX_CODES; i++) {
		snprintf(num, sizeof(num), "%s%ld", i == 0 ? " codes=" : ",", err->codes[i]);
		line_str(&l, num);
	}
	line_token(&l, "suberror", err->suberror);
	line_guid(&l, "trace_id", err->trace_id);
	line_guid(&l, "correlation_id", err->correlation_id);
	line_capolids(&l, err->claims);
	line_description(&l, err->error_description);
}
