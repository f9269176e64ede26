/* fuzz_event: libFuzzer target for the event decoder (worker/event_codec.c).
 *
 * The input is one Kafka message value, exactly as ccd-worker hands it to event_decode (the key,
 * the model id, is checked by the worker before decoding and never reaches the codec). The codec
 * is set up once, the way the worker does at start-up: reader schema schemas/interaction.avsc,
 * event times limited to the worker's defaults, and the Confluent ids of test_event_codec.c
 * registered to writer schemas, so the seeds in tests/fuzz/corpus/event/ (written by that test)
 * reach every writer:
 *   1 schemas/interaction.avsc     2 tests/unit/codec/interaction_v2.avsc (extra fields of every
 * kind) 3 interaction_v3_noweight.avsc  4 interaction_loose.avsc (branches the reader cannot hold)
 *   5 tests/fuzz/schemas/interaction_wide.avsc (every Avro type, nested arrays and maps)
 * Each input is decoded with input.format = auto, raw and confluent (the three settings a worker
 * can run with). A decode error is a normal outcome; what must hold:
 *   - no crash, leak, hang or sanitizer report;
 *   - a failure comes with a non-empty, terminated reason, and a tiny reason buffer is safe;
 *   - auto agrees with the explicit format its first byte selects (rc, reason and event);
 *   - a decoded event satisfies the header's contract (ids 1..EVENT_MAX_ID bytes without control
 *     characters, event_type at most EVENT_MAX_TYPE, event_time in range, weight finite >= 0 or
 *     absent and 1), and re-encoding it (raw and Confluent id 1) decodes to the same event.
 * Schemas are found in $CCD_SCHEMA_DIR (<source>/schemas), else in the source tree this was built
 * from. Violations print what failed and abort(), which libFuzzer and the replay driver report. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_codec.h"

#ifndef CCD_SOURCE_DIR
#define CCD_SOURCE_DIR "."
#endif

/* worker_config_init's defaults for input.min_event_time_ms / input.max_event_time_ms */
#define MIN_T 0LL
#define MAX_T 4102444800000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_options(void);

/* The codec lives for the whole run, and Avro-C keeps some of its pointers (the buffers of the
 * string values it decodes into, inside generic records and unions) at unaligned offsets, which
 * LeakSanitizer does not scan by default: without use_unaligned, every decoded string would be
 * reported as a leak (libFuzzer checks after each input that allocated more than it freed). The
 * codec itself is leak-free (test_event_codec frees it under ASan). LSAN_OPTIONS still wins. */
__attribute__((used, visibility("default"))) const char *__lsan_default_options(void)
{
    return "use_unaligned=1";
}

static event_codec *codec;

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_event: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static const char *schema_path(const char *rel)
{
    static char buf[2][4096];
    static int k;
    const char *dir = getenv("CCD_SCHEMA_DIR");
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir && *dir ? dir : CCD_SOURCE_DIR "/schemas", rel);
    return buf[k];
}

static void setup(void)
{
    char err[512];
    codec = event_codec_new(schema_path("interaction.avsc"), MIN_T, MAX_T, err, sizeof err);
    if (!codec)
        die("event_codec_new: %s", err);
    static const struct {
        int32_t id;
        const char *rel;
    } writers[] = {{1, "interaction.avsc"},
                   {2, "../tests/unit/codec/interaction_v2.avsc"},
                   {3, "../tests/unit/codec/interaction_v3_noweight.avsc"},
                   {4, "../tests/unit/codec/interaction_loose.avsc"},
                   {5, "../tests/fuzz/schemas/interaction_wide.avsc"}};
    for (size_t i = 0; i < sizeof writers / sizeof writers[0]; i++)
        if (event_codec_register(codec, writers[i].id, schema_path(writers[i].rel), err,
                                 sizeof err) != 0)
            die("event_codec_register: %s", err);
}

static void check_text(const char *name, const char *s, size_t cap, size_t max, bool need)
{
    const char *nul = memchr(s, '\0', cap);
    if (!nul)
        die("%s is not NUL-terminated", name);
    size_t n = (size_t)(nul - s);
    if ((need && n == 0) || n > max)
        die("%s has a bad length: \"%s\"", name, s);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            die("%s holds a control character: \"%s\"", name, s);
}

static void check_event(const ccd_event *ev)
{
    check_text("user_id", ev->user_id, sizeof ev->user_id, EVENT_MAX_ID, true);
    check_text("item_id", ev->item_id, sizeof ev->item_id, EVENT_MAX_ID, true);
    check_text("event_type", ev->event_type, sizeof ev->event_type, EVENT_MAX_TYPE, false);
    if (!ev->has_type && ev->event_type[0])
        die("event_type set without has_type: \"%s\"", ev->event_type);
    if (ev->event_time_ms < MIN_T || ev->event_time_ms > MAX_T)
        die("event_time %lld out of range", (long long)ev->event_time_ms);
    if (ev->has_weight ? !(isfinite(ev->weight) && ev->weight >= 0) : ev->weight != 1)
        die("bad weight");
}

static bool same_event(const ccd_event *a, const ccd_event *b)
{
    return !strcmp(a->user_id, b->user_id) && !strcmp(a->item_id, b->item_id) &&
           a->event_time_ms == b->event_time_ms && a->has_type == b->has_type &&
           !strcmp(a->event_type, b->event_type) && a->has_weight == b->has_weight &&
           !memcmp(&a->weight, &b->weight, sizeof a->weight);
}

typedef struct {
    int rc;
    char reason[256];
    ccd_event ev;
} outcome;

/* The message is copied into a buffer of exactly its size, so that any read past its end is an
 * ASan report even when libFuzzer's own buffer has slack. */
static void decode(event_format fmt, const uint8_t *data, size_t size, outcome *o)
{
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy)
        abort();
    if (size)
        memcpy(copy, data, size);
    memset(o, 0, sizeof *o);
    o->rc = event_decode(codec, fmt, size ? copy : NULL, size, &o->ev, o->reason, sizeof o->reason);
    free(copy);
    if (o->rc != 0 && o->rc != -1)
        die("event_decode returned neither 0 nor -1");
    if (!memchr(o->reason, '\0', sizeof o->reason))
        die("reason not terminated");
    if (o->rc == -1 && !o->reason[0])
        die("failure without a reason");
    if (o->rc == 0)
        check_event(&o->ev);
}

static void round_trip(const ccd_event *ev, int32_t schema_id)
{
    unsigned char *buf;
    size_t len;
    char err[256];
    if (event_encode(codec, ev, schema_id, &buf, &len, err, sizeof err) != 0)
        die("a decoded event does not encode again: %s", err);
    outcome o;
    decode(schema_id < 0 ? EVENT_FORMAT_RAW : EVENT_FORMAT_CONFLUENT, buf, len, &o);
    free(buf);
    if (o.rc != 0)
        die("a re-encoded event does not decode: %s", o.reason);
    if (!same_event(ev, &o.ev))
        die("round trip changed the event (user \"%s\", item \"%s\")", ev->user_id, ev->item_id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!codec)
        setup();

    static outcome o_auto, o_raw, o_conf;
    decode(EVENT_FORMAT_AUTO, data, size, &o_auto);
    decode(EVENT_FORMAT_RAW, data, size, &o_raw);
    decode(EVENT_FORMAT_CONFLUENT, data, size, &o_conf);

    /* auto: 0x00 first is Confluent, anything else raw (an empty message fails in all three) */
    const outcome *same = size > 0 && data[0] == 0x00 ? &o_conf : &o_raw;
    if (o_auto.rc != same->rc || strcmp(o_auto.reason, same->reason) ||
        (o_auto.rc == 0 && !same_event(&o_auto.ev, &same->ev)))
        die("auto format disagrees with the explicit one: \"%s\" vs \"%s\"", o_auto.reason,
            same->reason);

    /* the worker passes a 256-byte reason buffer; a smaller one must truncate, not overflow */
    char tiny[4];
    ccd_event ev;
    int rc = event_decode(codec, EVENT_FORMAT_AUTO, data, size, &ev, tiny, sizeof tiny);
    if (rc != o_auto.rc || (rc == -1 && !memchr(tiny, '\0', sizeof tiny)))
        die("a small reason buffer changed the outcome");
    if (event_decode(codec, EVENT_FORMAT_AUTO, data, size, &ev, NULL, 0) != o_auto.rc)
        die("a NULL reason buffer changed the outcome");

    if (o_auto.rc == 0) {
        round_trip(&o_auto.ev, -1);
        round_trip(&o_auto.ev, 1);
    }
    return 0;
}
