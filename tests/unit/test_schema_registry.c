/* schema_registry: how each kind of answer is classified, the missing-id cache, the backoff.
 *
 * The answers come from FAKE_REGISTRY below, a canned HTTP responder on a loopback port: it
 * exists only to produce the error answers a real registry rarely gives on demand (a 404 without
 * the Confluent error body, a 500, a 401, a non-Avro schema, no answer at all). The real thing,
 * Apicurio Registry, is tested end to end by tests/registry.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "schema_registry.h"

/* ---- FAKE_REGISTRY: canned answers by schema id --------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int fake_fd = -1;
static int fake_port;
static atomic_int fake_requests;

static const char *canned(int id, int *hang)
{
    *hang = 0;
    switch (id) {
    case 1:
        return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
               "{\"schema\":\"{\\\"type\\\":\\\"record\\\",\\\"name\\\":\\\"Interaction\\\","
               "\\\"fields\\\":[]}\"}";
    case 2:
        return "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n"
               "{\"error_code\":40403,\"message\":\"Schema not found\"}";
    case 3:
        return "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\r\n<html>no</html>";
    case 4:
        return "HTTP/1.1 500 Internal Server Error\r\n\r\n";
    case 5:
        return "HTTP/1.1 401 Unauthorized\r\n\r\n";
    case 6:
        return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
               "{\"schema\":\"syntax = \\\"proto3\\\";\",\"schemaType\":\"PROTOBUF\"}";
    case 8:
        return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\nnot json";
    default: /* 7: accept, never answer (the client's timeout) */
        *hang = 1;
        return "";
    }
}

static void *fake_serve(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(fake_fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char req[4096];
        ssize_t n = recv(c, req, sizeof req - 1, 0);
        req[n > 0 ? n : 0] = '\0';
        atomic_fetch_add(&fake_requests, 1);
        const char *p = strstr(req, "/schemas/ids/");
        int hang, id = p ? atoi(p + 13) : 0;
        const char *body = canned(id, &hang);
        if (hang) {
            sleep_ms(800);
        } else {
            char resp[1024];
            const char *sep = strstr(body, "\r\n\r\n");
            int len = snprintf(resp, sizeof resp, "%.*sContent-Length: %zu\r\nConnection: close%s",
                               (int)(sep - body) + 2, body, strlen(sep + 4), sep);
            (void)!send(c, resp, (size_t)len, MSG_NOSIGNAL);
        }
        close(c);
    }
}

static int fake_start(void **state)
{
    (void)state;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    fake_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fake_fd < 0 || bind(fake_fd, (struct sockaddr *)&a, sizeof a) || listen(fake_fd, 16) ||
        getsockname(fake_fd, (struct sockaddr *)&a, &al))
        return -1;
    fake_port = ntohs(a.sin_port);
    pthread_t t;
    if (pthread_create(&t, NULL, fake_serve, NULL))
        return -1;
    pthread_detach(t);
    return 0;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static schema_registry *open_fake(int64_t ttl_ms)
{
    char url[64], err[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", fake_port); /* trailing '/' is dropped */
    schema_registry_opts o = {.url = url, .timeout_ms = 300, .missing_ttl_ms = ttl_ms};
    schema_registry *r = schema_registry_new(&o, err, sizeof err);
    assert_non_null(r);
    return r;
}

/* One lookup of id on a fresh registry: its result, and its reason in reason. */
static event_lookup_result lookup_once(int32_t id, char *reason, size_t reasonlen)
{
    schema_registry *r = open_fake(1000);
    char *json = NULL;
    size_t len = 0;
    event_lookup_result res = schema_registry_lookup(r, id, &json, &len, reason, reasonlen);
    free(json);
    schema_registry_free(r);
    return res;
}

static void found_and_missing(void **state)
{
    (void)state;
    schema_registry *r = open_fake(60000);
    char *json = NULL, reason[256];
    size_t len = 0;
    assert_int_equal(schema_registry_lookup(r, 1, &json, &len, reason, sizeof reason),
                     EVENT_LOOKUP_FOUND);
    assert_non_null(strstr(json, "\"Interaction\""));
    assert_int_equal(len, strlen(json));
    free(json);
    int before = atomic_load(&fake_requests);
    for (int i = 0; i < 3; i++) { /* asked once, then from the missing-id cache */
        assert_int_equal(schema_registry_lookup(r, 2, &json, &len, reason, sizeof reason),
                         EVENT_LOOKUP_MISSING);
        assert_string_equal(reason, "unknown schema id 2");
    }
    assert_int_equal(atomic_load(&fake_requests) - before, 1);
    /* a schema the codec refused is remembered with the codec's reason */
    snprintf(reason, sizeof reason, "schema id 9: incompatible");
    assert_int_equal(schema_registry_lookup(r, 9, NULL, NULL, reason, sizeof reason),
                     EVENT_LOOKUP_MISSING);
    assert_int_equal(schema_registry_lookup(r, 9, &json, &len, reason, sizeof reason),
                     EVENT_LOOKUP_MISSING);
    assert_string_equal(reason, "schema id 9: incompatible");
    assert_int_equal(atomic_load(&fake_requests) - before, 1);
    schema_registry_stats st;
    schema_registry_get_stats(r, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.found, 1);
    assert_int_equal(st.missing, 2);
    assert_int_equal(st.cache_hits, 3);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.up, 1);
    schema_registry_free(r);
}

static void missing_ttl_expires(void **state)
{
    (void)state;
    schema_registry *r = open_fake(100);
    char *json = NULL, reason[256];
    size_t len;
    int before = atomic_load(&fake_requests);
    assert_int_equal(schema_registry_lookup(r, 2, &json, &len, reason, sizeof reason),
                     EVENT_LOOKUP_MISSING);
    sleep_ms(150);
    assert_int_equal(schema_registry_lookup(r, 2, &json, &len, reason, sizeof reason),
                     EVENT_LOOKUP_MISSING);
    assert_int_equal(atomic_load(&fake_requests) - before, 2);
    schema_registry_free(r);
}

static void unavailable_answers(void **state)
{
    (void)state;
    char reason[256];
    static const struct {
        int32_t id;
        event_lookup_result want;
        const char *says;
    } cases[] = {
        {3, EVENT_LOOKUP_UNAVAILABLE, "not the Confluent API"},
        {4, EVENT_LOOKUP_UNAVAILABLE, "HTTP 500"},
        {5, EVENT_LOOKUP_UNAVAILABLE, "username/password"},
        {6, EVENT_LOOKUP_MISSING, "PROTOBUF schema, not Avro"},
        {8, EVENT_LOOKUP_UNAVAILABLE, "has no schema"},
        /* last: the fake answers nothing else while it hangs */
        {7, EVENT_LOOKUP_UNAVAILABLE, "registry unavailable: Timeout"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        event_lookup_result got = lookup_once(cases[i].id, reason, sizeof reason);
        if (got != cases[i].want || !strstr(reason, cases[i].says))
            fail_msg("id %d: result %d, reason \"%s\"; want %d, \"%s\"", (int)cases[i].id, got,
                     reason, cases[i].want, cases[i].says);
    }
}

static void backoff_while_down(void **state)
{
    (void)state;
    /* nothing listens on a port we bound and closed: connection refused */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    close(s);
    char url[64], err[256], reason[256], *json = NULL;
    size_t len;
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    schema_registry_opts o = {.url = url, .timeout_ms = 300, .missing_ttl_ms = 1000};
    schema_registry *r = schema_registry_new(&o, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(schema_registry_lookup(r, 1, &json, &len, reason, sizeof reason),
                     EVENT_LOOKUP_UNAVAILABLE);
    assert_non_null(strstr(reason, "registry unavailable"));
    int64_t wait = schema_registry_retry_ms(r);
    assert_true(wait >= 100 && wait <= 250);
    /* during the backoff: the same answer, no request */
    assert_int_equal(schema_registry_lookup(r, 5, &json, &len, reason, sizeof reason),
                     EVENT_LOOKUP_UNAVAILABLE);
    schema_registry_stats st;
    schema_registry_get_stats(r, &st);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.up, 0);
    sleep_ms(300); /* the next failure doubles the wait */
    assert_int_equal(schema_registry_lookup(r, 1, &json, &len, reason, sizeof reason),
                     EVENT_LOOKUP_UNAVAILABLE);
    assert_true(schema_registry_retry_ms(r) > 250);
    schema_registry_free(r);
}

static void bad_urls(void **state)
{
    (void)state;
    char err[256];
    schema_registry_opts o = {.url = "ftp://x", .timeout_ms = 300};
    assert_null(schema_registry_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "input.registry.url"));
    o.url = NULL;
    assert_null(schema_registry_new(&o, err, sizeof err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(found_and_missing),
        cmocka_unit_test(missing_ttl_expires),
        cmocka_unit_test(unavailable_answers),
        cmocka_unit_test(backoff_while_down),
        cmocka_unit_test(bad_urls),
    };
    return cmocka_run_group_tests(tests, fake_start, NULL);
}
