/* Shared parts of the HTTP stand-in of the oauth unit tests. */
#ifndef OAUTH_FAKE_HTTP_H
#define OAUTH_FAKE_HTTP_H

/* The decoded value of key in an urlencoded form, or NULL; "" counts.
 * Static storage: valid until the next call. */
char *form_value(const char *form, const char *key);

#endif
