/* schema_registry: see schema_registry.h for the design (caching, failures, threads). */
#include "schema_registry.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config_value.h"
#include "errmsg.h"

#define MAX_BODY (4 << 20) /* a schema of 1 MiB (event_codec's bound), JSON-escaped */
#define NEG_SLOTS 256      /* missing ids remembered at once; the oldest is forgotten first */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000

typedef struct {
    int32_t id;
    int64_t until_ms; /* 0: free slot */
    char reason[160];
} neg_entry;

struct schema_registry {
    CURL *curl;
    char *url; /* base, without a trailing '/' */
    char *username, *password, *ca_file;
    int timeout_ms;
    int64_t missing_ttl_ms;
    neg_entry neg[NEG_SLOTS];
    int64_t next_attempt_ms; /* while the registry is down: no request before this */
    int64_t backoff_ms;
    char last_error[160];
    schema_registry_stats st;
};

typedef struct {
    char *p;
    size_t n;
    bool overflow;
} body_buf;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void init_curl(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_opt(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

schema_registry *schema_registry_new(const schema_registry_opts *o, char *err, size_t errlen)
{
    if (!o->url || (strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8))) {
        errmsg_set(err, errlen, "input.registry.url: expected http://... or https://...");
        return NULL;
    }
    pthread_once(&curl_once, init_curl);
    schema_registry *r = calloc(1, sizeof *r);
    if (!r || curl_init_rc != CURLE_OK || !(r->curl = curl_easy_init()) ||
        !(r->url = strdup(o->url))) {
        errmsg_set(err, errlen, "schema registry: cannot initialise libcurl");
        schema_registry_free(r);
        return NULL;
    }
    size_t n = strlen(r->url);
    while (n > 0 && r->url[n - 1] == '/')
        r->url[--n] = '\0';
    r->username = dup_opt(o->username);
    r->password = dup_opt(o->password);
    r->ca_file = dup_opt(o->ca_file);
    r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    r->missing_ttl_ms = o->missing_ttl_ms;
    r->st.up = 1;
    return r;
}

void schema_registry_free(schema_registry *r)
{
    if (!r)
        return;
    if (r->curl)
        curl_easy_cleanup(r->curl);
    if (r->password)
        config_value_wipe(r->password);
    free(r->password);
    free(r->username);
    free(r->ca_file);
    free(r->url);
    free(r);
}

/* ---- negative cache ----------------------------------------------------------------------- */

static const neg_entry *neg_find(const schema_registry *r, int32_t id, int64_t now)
{
    for (int i = 0; i < NEG_SLOTS; i++)
        if (r->neg[i].until_ms > now && r->neg[i].id == id)
            return &r->neg[i];
    return NULL;
}

/* Remember id as missing: its own slot, else a free or expired one, else the one that expires
 * first. */
static void neg_add(schema_registry *r, int32_t id, const char *reason, int64_t now)
{
    if (r->missing_ttl_ms <= 0)
        return;
    neg_entry *slot = &r->neg[0];
    for (int i = 0; i < NEG_SLOTS; i++) {
        neg_entry *e = &r->neg[i];
        if (e->until_ms > now && e->id == id) {
            slot = e;
            break;
        }
        if (e->until_ms < slot->until_ms)
            slot = e;
    }
    slot->id = id;
    slot->until_ms = now + r->missing_ttl_ms;
    snprintf(slot->reason, sizeof slot->reason, "%s", reason);
}

/* ---- one request -------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    body_buf *b = ud;
    size_t add = size * nmemb;
    if (b->n + add > MAX_BODY) {
        b->overflow = true;
        return 0; /* aborts the transfer */
    }
    char *grown = realloc(b->p, b->n + add + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->n, data, add);
    b->n += add;
    grown[b->n] = '\0';
    b->p = grown;
    return add;
}

/* GET {url}/schemas/ids/{id} into b; the HTTP status in *status. CURLE_OK or libcurl's error. */
static CURLcode http_get(schema_registry *r, int32_t id, body_buf *b, long *status)
{
    char url[2048];
    snprintf(url, sizeof url, "%s/schemas/ids/%" PRId32, r->url, id);
    CURL *c = r->curl;
    curl_easy_reset(c); /* keeps the connection cache */
    struct curl_slist *hdr =
        curl_slist_append(NULL, "Accept: application/vnd.schemaregistry.v1+json, "
                                "application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM: the worker has other threads */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (r->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, r->ca_file);
    if (r->username) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, r->username);
        curl_easy_setopt(c, CURLOPT_PASSWORD, r->password ? r->password : "");
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdr);
    return rc;
}

/* A Confluent error body {"error_code": 40403, ...}: the id does not exist. */
static bool is_not_found(const body_buf *b)
{
    json_t *j = b->p ? json_loadb(b->p, b->n, 0, NULL) : NULL;
    json_int_t code = json_integer_value(json_object_get(j, "error_code"));
    json_decref(j);
    return code == 40403;
}

/* The schema text of a 200 answer {"schema": "...", "schemaType": "AVRO"} into *json.
 * EVENT_LOOKUP_MISSING for a schema that is not Avro (bad input: a producer used another
 * serializer), UNAVAILABLE for an answer that is not the API's (reason says which). */
static event_lookup_result parse_found(const body_buf *b, int32_t id, char **json, size_t *len,
                                       char *reason, size_t reasonlen)
{
    json_t *j = b->p ? json_loadb(b->p, b->n, 0, NULL) : NULL;
    const char *type = json_string_value(json_object_get(j, "schemaType"));
    json_t *schema = json_object_get(j, "schema");
    event_lookup_result res = EVENT_LOOKUP_UNAVAILABLE;
    if (!json_is_string(schema)) {
        errmsg_set(reason, reasonlen, "registry answer for schema id %" PRId32 " has no schema",
                   id);
    } else if (type && strcmp(type, "AVRO") != 0) {
        errmsg_set(reason, reasonlen, "schema id %" PRId32 " is a %.16s schema, not Avro", id,
                   type);
        res = EVENT_LOOKUP_MISSING;
    } else {
        *len = json_string_length(schema);
        *json = malloc(*len + 1);
        if (*json) {
            memcpy(*json, json_string_value(schema), *len + 1);
            res = EVENT_LOOKUP_FOUND;
        } else {
            errmsg_set(reason, reasonlen, "out of memory");
        }
    }
    json_decref(j);
    return res;
}

/* One request for id, classified as the header says; reason set unless FOUND. */
static event_lookup_result fetch(schema_registry *r, int32_t id, char **json, size_t *len,
                                 char *reason, size_t reasonlen)
{
    body_buf b = {0};
    long status;
    r->st.requests++;
    CURLcode rc = http_get(r, id, &b, &status);
    event_lookup_result res = EVENT_LOOKUP_UNAVAILABLE;
    if (rc != CURLE_OK)
        errmsg_set(reason, reasonlen, "registry unavailable: %s",
                   b.overflow ? "answer too large" : curl_easy_strerror(rc));
    else if (status == 200)
        res = parse_found(&b, id, json, len, reason, reasonlen);
    else if (status == 404 && is_not_found(&b)) {
        errmsg_set(reason, reasonlen, "unknown schema id %" PRId32, id);
        res = EVENT_LOOKUP_MISSING;
    } else
        errmsg_set(reason, reasonlen, "registry unavailable: HTTP %ld for schema id %" PRId32 "%s",
                   status, id,
                   status == 401 || status == 403 ? " (check input.registry.username/password)"
                   : status == 404                ? " (not the Confluent API: input.registry.url?)"
                                                  : "");
    free(b.p);
    return res;
}

event_lookup_result schema_registry_lookup(void *ctx, int32_t id, char **json, size_t *len,
                                           char *reason, size_t reasonlen)
{
    schema_registry *r = ctx;
    int64_t now = mono_ms();
    if (!json) { /* the codec refused the schema we found: remember why */
        r->st.missing++;
        neg_add(r, id, reason, now);
        return EVENT_LOOKUP_MISSING;
    }
    const neg_entry *e = neg_find(r, id, now);
    if (e || id < 0) {
        r->st.cache_hits += e != NULL;
        errmsg_set(reason, reasonlen, "%s", e ? e->reason : "unknown schema id");
        return EVENT_LOOKUP_MISSING;
    }
    if (now < r->next_attempt_ms) {
        errmsg_set(reason, reasonlen, "%s", r->last_error);
        return EVENT_LOOKUP_UNAVAILABLE;
    }
    event_lookup_result res = fetch(r, id, json, len, reason, reasonlen);
    if (res == EVENT_LOOKUP_UNAVAILABLE) {
        r->st.errors++;
        r->st.up = 0;
        r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (r->backoff_ms > BACKOFF_MAX_MS)
            r->backoff_ms = BACKOFF_MAX_MS;
        r->next_attempt_ms = now + r->backoff_ms;
        snprintf(r->last_error, sizeof r->last_error, "%s", reason);
        return res;
    }
    r->st.up = 1;
    r->backoff_ms = 0;
    r->next_attempt_ms = 0;
    if (res == EVENT_LOOKUP_FOUND)
        r->st.found++;
    else {
        r->st.missing++;
        neg_add(r, id, reason, now);
    }
    return res;
}

int64_t schema_registry_retry_ms(const schema_registry *r)
{
    int64_t left = r->next_attempt_ms - mono_ms();
    return left > 100 ? left : 100;
}

void schema_registry_get_stats(const schema_registry *r, schema_registry_stats *s)
{
    *s = r->st;
}
