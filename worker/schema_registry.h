/* schema_registry: writer schemas of Confluent schema ids from a schema registry's REST API
 * (GET {url}/schemas/ids/{id}, the Confluent API; Apicurio serves it under /apis/ccompat/v7).
 *
 * Design:
 *   - Only the consumer thread decodes (service.c), so one registry object belongs to that
 *     thread: no locks; one libcurl easy handle, reused, so the connection stays open.
 *   - Positive cache: none here. A Confluent id names one schema forever, so a schema that was
 *     found is registered in the event codec (event_codec_register_json) and never asked again.
 *     The static input.schema.<id> files are registered first and win for the ids they name.
 *   - Negative cache: an id the registry says does not exist (404 with error_code 40403), or
 *     whose schema is not an Avro record compatible with the reader schema, is remembered for
 *     missing_ttl_ms, so a flood of bad ids costs one request per id per TTL; their messages are
 *     dead-lettered ("unknown schema id N" / the reason). A 404 without a Confluent error body
 *     is a wrong URL, not a missing id: it is "unavailable" like any other failure.
 *   - Unavailable (connection refused, timeout, TLS failure, 401/403, 5xx, an unreadable answer):
 *     the message is not bad input, so it is never dead-lettered. The lookup answers
 *     EVENT_LOOKUP_UNAVAILABLE and the service holds the partition (pause, seek back to the
 *     message) and asks again after schema_registry_retry_ms(). Requests back off exponentially
 *     from 250 ms to 10 s while the registry stays down; a success resets the backoff.
 *   - TLS: libcurl verifies the server's certificate and host name (ca_file replaces the system
 *     CA bundle); redirects are not followed; only http and https URLs are accepted.
 *   - Credentials (HTTP basic) come from the config, which supports ${VAR} and KEY_file; they are
 *     wiped when the registry is freed and never appear in messages. */
#ifndef CCD_SCHEMA_REGISTRY_H
#define CCD_SCHEMA_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "event_codec.h"

typedef struct {
    const char *url;      /* base URL, e.g. http://host:8081 or .../apis/ccompat/v7 */
    const char *username; /* NULL or "": no authentication */
    const char *password;
    const char *ca_file;    /* NULL or "": the system CA bundle (input.registry.ca_location) */
    int timeout_ms;         /* one request, connection included */
    int64_t missing_ttl_ms; /* how long a missing or refused id is remembered */
} schema_registry_opts;

typedef struct {
    int64_t requests;   /* HTTP requests made */
    int64_t found;      /* schemas fetched */
    int64_t missing;    /* ids the registry does not know, or whose schema was refused */
    int64_t errors;     /* requests that failed: the registry was unavailable */
    int64_t cache_hits; /* lookups answered from the negative cache or the backoff */
    int64_t up;         /* 1 unless the last request failed */
} schema_registry_stats;

typedef struct schema_registry schema_registry;

/* NULL with a message in err (bad URL, libcurl init). Makes no request. */
schema_registry *schema_registry_new(const schema_registry_opts *o, char *err, size_t errlen);
void schema_registry_free(schema_registry *r);

/* An event_schema_lookup (event_codec.h); ctx is the registry. */
event_lookup_result schema_registry_lookup(void *ctx, int32_t id, char **json, size_t *len,
                                           char *reason, size_t reasonlen);

/* How long to wait before the next attempt after an UNAVAILABLE answer. */
int64_t schema_registry_retry_ms(const schema_registry *r);

void schema_registry_get_stats(const schema_registry *r, schema_registry_stats *s);

#endif
