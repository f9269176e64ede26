/* event_codec: raw and Confluent round trips, format detection, evolved and incompatible writer
 * schemas (tests/unit/codec/), and hostile input: every malformed kind fails with its reason,
 * every prefix of a valid record fails cleanly, and random bit flips never crash.
 *
 * With CCD_WRITE_CORPUS=<dir> set, the corpus test also writes seed inputs for the event fuzz
 * target there (tests/fuzz/corpus/event/ was made that way). Confluent seeds use the schema ids
 * registered in setup(): 1 reader schema, 2 v2, 3 v3_noweight, 4 loose. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <avro.h>
#include <math.h>

#include "event_codec.h"

#define MIN_T 946684800000LL  /* 2000-01-01 */
#define MAX_T 4102444800000LL /* 2100-01-01 */
#define T0 1700000000123LL

enum { ID_READER = 1, ID_V2 = 2, ID_V3 = 3, ID_LOOSE = 4 };

static const char *schema_dir(void)
{
    const char *d = getenv("CCD_SCHEMA_DIR");
    return d ? d : "schemas";
}

static const char *reader_path(void)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/interaction.avsc", schema_dir());
    return buf;
}

/* Test schemas live in tests/unit/codec/, found from CCD_SCHEMA_DIR (<source>/schemas). */
static const char *codec_path(const char *name)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/../tests/unit/codec/%s", schema_dir(), name);
    return buf[k];
}

static int setup(void **state)
{
    char err[512];
    event_codec *c = event_codec_new(reader_path(), MIN_T, MAX_T, err, sizeof err);
    if (!c) {
        fprintf(stderr, "event_codec_new: %s\n", err);
        return -1;
    }
    struct {
        int32_t id;
        const char *path;
    } reg[] = {{ID_READER, reader_path()},
               {ID_V2, codec_path("interaction_v2.avsc")},
               {ID_V3, codec_path("interaction_v3_noweight.avsc")},
               {ID_LOOSE, codec_path("interaction_loose.avsc")}};
    for (size_t i = 0; i < sizeof reg / sizeof reg[0]; i++) {
        if (event_codec_register(c, reg[i].id, reg[i].path, err, sizeof err) != 0) {
            fprintf(stderr, "event_codec_register: %s\n", err);
            event_codec_free(c);
            return -1;
        }
    }
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    event_codec_free(*state);
    return 0;
}

static ccd_event make_event(const char *user, const char *item, int64_t t, const char *type,
                            bool has_weight, float weight)
{
    ccd_event ev;
    memset(&ev, 0, sizeof ev);
    snprintf(ev.user_id, sizeof ev.user_id, "%s", user);
    snprintf(ev.item_id, sizeof ev.item_id, "%s", item);
    ev.event_time_ms = t;
    ev.has_type = type != NULL;
    if (type)
        snprintf(ev.event_type, sizeof ev.event_type, "%s", type);
    ev.has_weight = has_weight;
    ev.weight = has_weight ? weight : 1;
    return ev;
}

static void assert_event_equal(const ccd_event *a, const ccd_event *b)
{
    assert_string_equal(a->user_id, b->user_id);
    assert_string_equal(a->item_id, b->item_id);
    assert_true(a->event_time_ms == b->event_time_ms);
    assert_int_equal(a->has_type, b->has_type);
    if (a->has_type)
        assert_string_equal(a->event_type, b->event_type);
    assert_int_equal(a->has_weight, b->has_weight);
    assert_true(a->weight == b->weight);
}

/* The class a failure reason belongs to (event_last_reject), by what the reason says: the
 * metric's reason label must agree with the message the dead letter carries. */
static event_reject class_of(const char *reason)
{
    static const struct {
        const char *prefix;
        event_reject r;
    } table[] = {
        {"empty message", EVENT_REJECT_FRAME},      {"message too large", EVENT_REJECT_FRAME},
        {"bad magic byte", EVENT_REJECT_FRAME},     {"short confluent frame", EVENT_REJECT_FRAME},
        {"unknown schema id", EVENT_REJECT_SCHEMA}, {"empty user_id", EVENT_REJECT_FIELD},
        {"empty item_id", EVENT_REJECT_FIELD},      {"control character", EVENT_REJECT_FIELD},
        {"field too long", EVENT_REJECT_FIELD},     {"event_time out of range", EVENT_REJECT_FIELD},
        {"weight not finite", EVENT_REJECT_FIELD},  {"negative weight", EVENT_REJECT_FIELD},
    };
    for (size_t k = 0; k < sizeof table / sizeof *table; k++)
        if (!strncmp(reason, table[k].prefix, strlen(table[k].prefix)))
            return table[k].r;
    return EVENT_REJECT_DECODE; /* the rest: truncated, bad varint, null or incompatible, ... */
}

/* Decode must fail with a reason containing want, and the right reject class. */
static void expect_fail(event_codec *c, event_format fmt, const void *buf, size_t len,
                        const char *want)
{
    ccd_event ev;
    char reason[128] = "";
    int rc = event_decode(c, fmt, buf, len, &ev, reason, sizeof reason);
    if (rc != -1 || !strstr(reason, want))
        fail_msg("decode of %zu bytes: rc %d, reason \"%s\", want \"%s\"", len, rc, reason, want);
    if (event_last_reject(c) != class_of(reason))
        fail_msg("decode of %zu bytes: reason \"%s\" classed %s, expected %s", len, reason,
                 event_reject_name(event_last_reject(c)), event_reject_name(class_of(reason)));
}

static void expect_ok(event_codec *c, event_format fmt, const void *buf, size_t len, ccd_event *ev)
{
    char reason[128] = "";
    if (event_decode(c, fmt, buf, len, ev, reason, sizeof reason) != 0)
        fail_msg("decode of %zu bytes failed: %s", len, reason);
}

/* ---- hand-made Avro binary, to write what event_encode refuses to -----------------------------
 */

typedef struct {
    unsigned char b[1024];
    size_t n;
} msg;

static void put_bytes(msg *m, const void *p, size_t n)
{
    assert_true(m->n + n <= sizeof m->b);
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static void put_long(msg *m, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (u > 0x7f) {
        unsigned char b = (unsigned char)(u & 0x7f) | 0x80;
        put_bytes(m, &b, 1);
        u >>= 7;
    }
    unsigned char b = (unsigned char)u;
    put_bytes(m, &b, 1);
}

static void put_str(msg *m, const char *s, size_t n)
{
    put_long(m, (int64_t)n);
    put_bytes(m, s, n);
}

static void put_float(msg *m, float f)
{
    unsigned char b[4];
    memcpy(b, &f, 4); /* little-endian host, as Avro */
    put_bytes(m, b, 4);
}

static void put_confluent(msg *m, uint32_t id)
{
    unsigned char h[5] = {0, (unsigned char)(id >> 24), (unsigned char)(id >> 16),
                          (unsigned char)(id >> 8), (unsigned char)id};
    put_bytes(m, h, 5);
}

/* A reader-schema record; type NULL and !has_weight write the null branches. */
static msg record(const char *user, size_t ulen, const char *item, size_t ilen, int64_t t,
                  const char *type, bool has_weight, float weight)
{
    msg m = {.n = 0};
    put_str(&m, user, ulen);
    put_str(&m, item, ilen);
    put_long(&m, t);
    put_long(&m, type ? 1 : 0);
    if (type)
        put_str(&m, type, strlen(type));
    put_long(&m, has_weight ? 1 : 0);
    if (has_weight)
        put_float(&m, weight);
    return m;
}

static msg simple(const char *user, const char *item)
{
    return record(user, strlen(user), item, strlen(item), T0, "click", true, 2.5f);
}

/* ---- writer-schema encoding with Avro-C itself, for the evolved schemas -----------------------
 */

static avro_schema_t load_schema(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char json[8192];
    size_t n = fread(json, 1, sizeof json, f);
    fclose(f);
    avro_schema_t s;
    if (avro_schema_from_json_length(json, n, &s) != 0)
        fail_msg("%s: %s", path, avro_strerror());
    return s;
}

static void set_str(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f;
    assert_int_equal(avro_value_get_by_name(rec, name, &f, NULL), 0);
    assert_int_equal(avro_value_set_string(&f, s), 0);
}

static void set_opt_str(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f, b;
    assert_int_equal(avro_value_get_by_name(rec, name, &f, NULL), 0);
    assert_int_equal(avro_value_set_branch(&f, s != NULL, &b), 0);
    assert_int_equal(s ? avro_value_set_string(&b, s) : avro_value_set_null(&b), 0);
}

/* Confluent message with schema id `id`, the record filled by fill() through Avro-C. */
static msg encode_with(const char *schema_file, uint32_t id, void (*fill)(avro_value_t *rec))
{
    avro_schema_t s = load_schema(codec_path(schema_file));
    avro_value_iface_t *cls = avro_generic_class_from_schema(s);
    assert_non_null(cls);
    avro_value_t rec;
    assert_int_equal(avro_generic_value_new(cls, &rec), 0);
    fill(&rec);
    msg m = {.n = 0};
    put_confluent(&m, id);
    avro_writer_t w = avro_writer_memory((const char *)m.b + 5, (int64_t)(sizeof m.b - 5));
    if (avro_value_write(w, &rec) != 0)
        fail_msg("write with %s: %s", schema_file, avro_strerror());
    m.n += (size_t)avro_writer_tell(w);
    avro_writer_free(w);
    avro_value_decref(&rec);
    avro_value_iface_decref(cls);
    avro_schema_decref(s);
    return m;
}

static void fill_v2(avro_value_t *rec)
{
    avro_value_t f, b, e, g;
    set_str(rec, "user_id", "u-v2");
    set_opt_str(rec, "session_id", "session-42");
    set_str(rec, "item_id", "i-v2");
    assert_int_equal(avro_value_get_by_name(rec, "event_time", &f, NULL), 0);
    assert_int_equal(avro_value_set_long(&f, T0), 0);
    assert_int_equal(avro_value_get_by_name(rec, "device", &f, NULL), 0);
    assert_int_equal(avro_value_set_branch(&f, 1, &b), 0);
    assert_int_equal(avro_value_get_by_name(&b, "name", &g, NULL), 0);
    assert_int_equal(avro_value_set_string(&g, "phone"), 0);
    assert_int_equal(avro_value_get_by_name(&b, "trusted", &g, NULL), 0);
    assert_int_equal(avro_value_set_boolean(&g, 1), 0);
    set_opt_str(rec, "event_type", "purchase");
    assert_int_equal(avro_value_get_by_name(rec, "weight", &f, NULL), 0);
    assert_int_equal(avro_value_set_branch(&f, 1, &b), 0);
    assert_int_equal(avro_value_set_float(&b, 3.25f), 0);
    assert_int_equal(avro_value_get_by_name(rec, "tags", &f, NULL), 0);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(avro_value_append(&f, &e, NULL), 0);
        assert_int_equal(avro_value_set_string(&e, k == 1 ? "sale" : "new"), 0);
    }
    assert_int_equal(avro_value_get_by_name(rec, "counters", &f, NULL), 0);
    assert_int_equal(avro_value_add(&f, "views", &e, NULL, NULL), 0);
    assert_int_equal(avro_value_set_long(&e, 17), 0);
    assert_int_equal(avro_value_add(&f, "carts", &e, NULL, NULL), 0);
    assert_int_equal(avro_value_set_long(&e, -3), 0);
    assert_int_equal(avro_value_get_by_name(rec, "kind", &f, NULL), 0);
    assert_int_equal(avro_value_set_enum(&f, 2), 0);
    assert_int_equal(avro_value_get_by_name(rec, "digest", &f, NULL), 0);
    assert_int_equal(avro_value_set_fixed(&f, (void *)"\x01\x02\x03\x04", 4), 0);
    assert_int_equal(avro_value_get_by_name(rec, "score", &f, NULL), 0);
    assert_int_equal(avro_value_set_double(&f, 0.75), 0);
    assert_int_equal(avro_value_get_by_name(rec, "previous_device", &f, NULL), 0);
    assert_int_equal(avro_value_set_branch(&f, 1, &b), 0);
    assert_int_equal(avro_value_get_by_name(&b, "name", &g, NULL), 0);
    assert_int_equal(avro_value_set_string(&g, "laptop"), 0);
    assert_int_equal(avro_value_get_by_name(&b, "trusted", &g, NULL), 0);
    assert_int_equal(avro_value_set_boolean(&g, 0), 0);
}

static void fill_v3(avro_value_t *rec)
{
    avro_value_t f;
    set_str(rec, "user_id", "u-v3");
    set_str(rec, "item_id", "i-v3");
    assert_int_equal(avro_value_get_by_name(rec, "event_time", &f, NULL), 0);
    assert_int_equal(avro_value_set_long(&f, T0 + 1), 0);
    set_str(rec, "event_type", "view");
    set_str(rec, "origin", "web");
}

static int loose_variant;

/* interaction_loose: 0 a valid record, 1 a null user_id, 2 an int event_type. */
static void fill_loose(avro_value_t *rec)
{
    avro_value_t f, b;
    set_opt_str(rec, "user_id", loose_variant == 1 ? NULL : "u-loose");
    set_str(rec, "item_id", "i-loose");
    assert_int_equal(avro_value_get_by_name(rec, "event_time", &f, NULL), 0);
    assert_int_equal(avro_value_set_long(&f, T0), 0);
    assert_int_equal(avro_value_get_by_name(rec, "event_type", &f, NULL), 0);
    assert_int_equal(avro_value_set_branch(&f, loose_variant == 2 ? 2 : 1, &b), 0);
    assert_int_equal(
        loose_variant == 2 ? avro_value_set_int(&b, 7) : avro_value_set_string(&b, "like"), 0);
    assert_int_equal(avro_value_get_by_name(rec, "weight", &f, NULL), 0);
    assert_int_equal(avro_value_set_branch(&f, 0, &b), 0);
    assert_int_equal(avro_value_set_null(&b), 0);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void format_parse(void **state)
{
    (void)state;
    event_format f;
    assert_int_equal(event_format_parse("auto", &f), 0);
    assert_int_equal(f, EVENT_FORMAT_AUTO);
    assert_int_equal(event_format_parse("raw", &f), 0);
    assert_int_equal(f, EVENT_FORMAT_RAW);
    assert_int_equal(event_format_parse("confluent", &f), 0);
    assert_int_equal(f, EVENT_FORMAT_CONFLUENT);
    assert_int_equal(event_format_parse("Confluent", &f), -1);
    assert_int_equal(event_format_parse("", &f), -1);
}

static const ccd_event *round_trip_events(size_t *n)
{
    static ccd_event evs[6];
    char long_id[EVENT_MAX_ID + 1];
    memset(long_id, 'x', EVENT_MAX_ID);
    long_id[EVENT_MAX_ID] = '\0';
    char long_type[EVENT_MAX_TYPE + 1];
    memset(long_type, 't', EVENT_MAX_TYPE);
    long_type[EVENT_MAX_TYPE] = '\0';
    evs[0] = make_event("user-1", "item-1", T0, NULL, false, 0);           /* both absent */
    evs[1] = make_event("user-2", "item-2", T0, "click", false, 0);        /* type only */
    evs[2] = make_event("user-3", "item-3", T0, NULL, true, 0.5f);         /* weight only */
    evs[3] = make_event("u\xc3\xa9", "42", MIN_T, "purchase", true, 0.0f); /* both, UTF-8, limits */
    evs[4] = make_event(long_id, long_id, MAX_T, long_type, true, 3.0e38f); /* longest fields */
    evs[5] = make_event("user-6", "item-6", T0, "", true, 1.0f);            /* empty event_type */
    *n = sizeof evs / sizeof evs[0];
    return evs;
}

static void round_trip(void **state, int32_t id, event_format fmt)
{
    event_codec *c = *state;
    size_t n;
    const ccd_event *evs = round_trip_events(&n);
    for (size_t i = 0; i < n; i++) {
        unsigned char *buf;
        size_t len;
        char err[128];
        if (event_encode(c, &evs[i], id, &buf, &len, err, sizeof err) != 0)
            fail_msg("encode %zu: %s", i, err);
        if (id >= 0) {
            assert_true(len > 5);
            assert_int_equal(buf[0], 0);
            assert_int_equal((buf[1] << 24 | buf[2] << 16 | buf[3] << 8 | buf[4]), id);
        } else {
            assert_true(buf[0] != 0);
        }
        ccd_event out;
        memset(&out, 0x5a, sizeof out);
        expect_ok(c, fmt, buf, len, &out);
        assert_event_equal(&out, &evs[i]);
        free(buf);
    }
}

static void round_trip_raw(void **state)
{
    round_trip(state, -1, EVENT_FORMAT_RAW);
    round_trip(state, -1, EVENT_FORMAT_AUTO);
}

static void round_trip_confluent(void **state)
{
    round_trip(state, ID_READER, EVENT_FORMAT_CONFLUENT);
    round_trip(state, ID_READER, EVENT_FORMAT_AUTO);
}

/* Hand-made and event_encode bytes agree, so the hand-made malformed cases below test what
 * they claim to. */
static void encoder_matches_spec(void **state)
{
    event_codec *c = *state;
    ccd_event ev = make_event("user", "item", T0, "click", true, 2.5f);
    unsigned char *buf;
    size_t len;
    char err[128];
    assert_int_equal(event_encode(c, &ev, -1, &buf, &len, err, sizeof err), 0);
    msg m = simple("user", "item");
    assert_int_equal(len, m.n);
    assert_memory_equal(buf, m.b, len);
    free(buf);
}

static void auto_detection(void **state)
{
    event_codec *c = *state;
    ccd_event ev = make_event("u", "i", T0, "click", true, 2.0f), out;
    unsigned char *raw, *conf;
    size_t raw_len, conf_len;
    char err[128];
    assert_int_equal(event_encode(c, &ev, -1, &raw, &raw_len, err, sizeof err), 0);
    assert_int_equal(event_encode(c, &ev, ID_READER, &conf, &conf_len, err, sizeof err), 0);
    expect_ok(c, EVENT_FORMAT_AUTO, raw, raw_len, &out);
    assert_event_equal(&out, &ev);
    expect_ok(c, EVENT_FORMAT_AUTO, conf, conf_len, &out);
    assert_event_equal(&out, &ev);
    /* Each format forced onto the other's bytes fails. */
    expect_fail(c, EVENT_FORMAT_CONFLUENT, raw, raw_len, "bad magic byte 0x02");
    expect_fail(c, EVENT_FORMAT_RAW, conf, conf_len, "");
    free(raw);
    free(conf);
}

static void evolved_writer_extra_fields(void **state)
{
    event_codec *c = *state;
    msg m = encode_with("interaction_v2.avsc", ID_V2, fill_v2);
    ccd_event out, want = make_event("u-v2", "i-v2", T0, "purchase", true, 3.25f);
    expect_ok(c, EVENT_FORMAT_CONFLUENT, m.b, m.n, &out);
    assert_event_equal(&out, &want);
    expect_ok(c, EVENT_FORMAT_AUTO, m.b, m.n, &out);
    assert_event_equal(&out, &want);
    /* The same bytes under the reader schema's id are garbage and must fail. */
    m.b[4] = ID_READER;
    expect_fail(c, EVENT_FORMAT_CONFLUENT, m.b, m.n, "");
}

static void evolved_writer_missing_defaulted_field(void **state)
{
    event_codec *c = *state;
    msg m = encode_with("interaction_v3_noweight.avsc", ID_V3, fill_v3);
    ccd_event out, want = make_event("u-v3", "i-v3", T0 + 1, "view", false, 0);
    expect_ok(c, EVENT_FORMAT_AUTO, m.b, m.n, &out);
    assert_event_equal(&out, &want);
    assert_true(out.weight == 1.0f);
}

static void writer_values_reader_cannot_hold(void **state)
{
    event_codec *c = *state;
    ccd_event out, want = make_event("u-loose", "i-loose", T0, "like", false, 0);
    loose_variant = 0;
    msg m = encode_with("interaction_loose.avsc", ID_LOOSE, fill_loose);
    expect_ok(c, EVENT_FORMAT_AUTO, m.b, m.n, &out);
    assert_event_equal(&out, &want);
    loose_variant = 1;
    m = encode_with("interaction_loose.avsc", ID_LOOSE, fill_loose);
    expect_fail(c, EVENT_FORMAT_AUTO, m.b, m.n, "null user_id");
    loose_variant = 2;
    m = encode_with("interaction_loose.avsc", ID_LOOSE, fill_loose);
    expect_fail(c, EVENT_FORMAT_AUTO, m.b, m.n, "incompatible type in event_type");
}

static void register_failures_name_the_file(void **state)
{
    event_codec *c = *state;
    struct {
        const char *file, *want;
    } cases[] = {
        {"incompatible_user_int.avsc", "user_id"},
        {"missing_item.avsc", "field item_id is missing"},
        {"renamed.avsc", "Click"},
        {"zero_size_array.avsc", "zero-size"},
        {"recursive.avsc", "recursive"},
        {"not_json.avsc", "not a valid Avro schema"},
        {"no_such_file.avsc", "No such file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = codec_path(cases[i].file);
        char err[512] = "";
        assert_int_equal(event_codec_register(c, 100 + (int32_t)i, path, err, sizeof err), -1);
        if (!strstr(err, path) || !strstr(err, cases[i].want))
            fail_msg("%s: message \"%s\" lacks the path or \"%s\"", cases[i].file, err,
                     cases[i].want);
        /* The failed id stays unknown. */
        msg m;
        m.n = 0;
        put_confluent(&m, 100 + (uint32_t)i);
        msg body = simple("u", "i");
        put_bytes(&m, body.b, body.n);
        expect_fail(c, EVENT_FORMAT_AUTO, m.b, m.n, "unknown schema id");
    }
    char err[512] = "";
    assert_int_equal(event_codec_register(c, ID_READER, reader_path(), err, sizeof err), -1);
    assert_non_null(strstr(err, "already registered"));
    assert_int_equal(event_codec_register(c, -1, reader_path(), err, sizeof err), -1);
    assert_non_null(strstr(err, reader_path()));

    /* A reader schema that is not the Interaction record. */
    assert_null(event_codec_new(codec_path("missing_item.avsc"), MIN_T, MAX_T, err, sizeof err));
    assert_non_null(strstr(err, codec_path("missing_item.avsc")));
    assert_null(event_codec_new(codec_path("no_such_file.avsc"), MIN_T, MAX_T, err, sizeof err));
    assert_non_null(strstr(err, "no_such_file.avsc"));
}

static void encode_refuses_invalid_events(void **state)
{
    event_codec *c = *state;
    ccd_event bad[] = {
        make_event("", "i", T0, NULL, false, 0),    make_event("u", "", T0, NULL, false, 0),
        make_event("u\n", "i", T0, NULL, false, 0), make_event("u", "i", -1, NULL, false, 0),
        make_event("u", "i", T0, NULL, true, NAN),  make_event("u", "i", T0, NULL, true, -1.0f),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char *buf = (unsigned char *)"sentinel";
        size_t len = 7;
        char err[128] = "";
        assert_int_equal(event_encode(c, &bad[i], -1, &buf, &len, err, sizeof err), -1);
        assert_null(buf);
        assert_true(err[0] != '\0');
    }
    /* user_id filling its whole array, without a terminator, is too long. */
    ccd_event ev = make_event("u", "i", T0, NULL, false, 0);
    memset(ev.user_id, 'a', sizeof ev.user_id);
    unsigned char *buf;
    size_t len;
    char err[128] = "";
    assert_int_equal(event_encode(c, &ev, -1, &buf, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "field too long: user_id"));
}

static void malformed_framing(void **state)
{
    event_codec *c = *state;
    msg ok = simple("user", "item");
    expect_fail(c, EVENT_FORMAT_AUTO, "", 0, "empty message");
    expect_fail(c, EVENT_FORMAT_AUTO, NULL, 0, "empty message");

    /* Oversized: a valid record padded past the limit (as trailing bytes, never looked at). */
    size_t big = EVENT_MAX_MESSAGE + 1;
    unsigned char *huge = calloc(1, big);
    memcpy(huge, ok.b, ok.n);
    expect_fail(c, EVENT_FORMAT_AUTO, huge, big, "message too large");
    expect_fail(c, EVENT_FORMAT_RAW, huge, EVENT_MAX_MESSAGE, "trailing bytes");
    free(huge);

    for (size_t n = 1; n < 5; n++)
        expect_fail(c, EVENT_FORMAT_AUTO, "\0\0\0\0", n, "short confluent frame");
    msg m = {.n = 0};
    unsigned char five = 5;
    put_bytes(&m, &five, 1);
    put_bytes(&m, "\0\0\0\1", 4);
    put_bytes(&m, ok.b, ok.n);
    expect_fail(c, EVENT_FORMAT_CONFLUENT, m.b, m.n, "bad magic byte 0x05");
    m.n = 0;
    put_confluent(&m, 7);
    put_bytes(&m, ok.b, ok.n);
    expect_fail(c, EVENT_FORMAT_AUTO, m.b, m.n, "unknown schema id 7");
    m.n = 0;
    put_confluent(&m, 0xffffffffu);
    put_bytes(&m, ok.b, ok.n);
    expect_fail(c, EVENT_FORMAT_AUTO, m.b, m.n, "unknown schema id -1");
    m.n = 0;
    put_confluent(&m, ID_READER);
    expect_fail(c, EVENT_FORMAT_AUTO, m.b, m.n, "truncated"); /* header only */

    /* Trailing bytes after a complete record, raw and Confluent. */
    m = ok;
    put_bytes(&m, "\0", 1);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "trailing bytes");
    m.n = 0;
    put_confluent(&m, ID_READER);
    put_bytes(&m, ok.b, ok.n);
    put_bytes(&m, "xyz", 3);
    expect_fail(c, EVENT_FORMAT_AUTO, m.b, m.n, "trailing bytes");
}

static void malformed_encoding(void **state)
{
    event_codec *c = *state;
    msg m;

    /* A declared string length of 2^40 with a few bytes behind it: refused before any malloc. */
    m.n = 0;
    put_long(&m, (int64_t)1 << 40);
    put_bytes(&m, "abcdefgh", 8);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "length out of range");
    m.n = 0;
    put_str(&m, "u", 1);
    put_long(&m, INT64_MAX);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "length out of range");
    /* A length just inside the limit but past the end of the buffer. */
    m.n = 0;
    put_long(&m, 1000);
    put_bytes(&m, "abc", 3);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "truncated");

    m.n = 0;
    put_long(&m, -3);
    put_bytes(&m, "abc", 3);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "negative length");
    m.n = 0;
    put_str(&m, "u", 1);
    put_long(&m, INT64_MIN);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "negative length");

    /* Varints: 11 continuation bytes, and a 10-byte one overflowing 64 bits. */
    m.n = 0;
    put_bytes(&m, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "bad varint");
    m.n = 0;
    put_str(&m, "u", 1);
    put_str(&m, "i", 1);
    put_bytes(&m, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", 10);
    put_bytes(&m, "\0\0", 2);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "bad varint");

    /* Union indexes out of range (Avro-C itself would index past its branch table). */
    int64_t idx[] = {2, 5, -1, (int64_t)1 << 32, INT64_MIN};
    for (size_t k = 0; k < sizeof idx / sizeof idx[0]; k++) {
        m.n = 0;
        put_str(&m, "u", 1);
        put_str(&m, "i", 1);
        put_long(&m, T0);
        put_long(&m, idx[k]);
        put_str(&m, "click", 5);
        put_long(&m, 0);
        expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "union index out of range");
        m.n = 0;
        put_str(&m, "u", 1);
        put_str(&m, "i", 1);
        put_long(&m, T0);
        put_long(&m, 0);
        put_long(&m, idx[k]);
        put_float(&m, 1.0f);
        expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "union index out of range");
    }

    /* Text that is not Avro at all. */
    expect_fail(c, EVENT_FORMAT_RAW, "hello, world", 12, "truncated");
    expect_fail(c, EVENT_FORMAT_AUTO, "{\"user_id\": \"u\"}", 16, "");
}

static void malformed_fields(void **state)
{
    event_codec *c = *state;
    char long_id[EVENT_MAX_ID + 2];
    memset(long_id, 'x', sizeof long_id);
    char long_type[EVENT_MAX_TYPE + 2];
    memset(long_type, 't', sizeof long_type);
    long_type[EVENT_MAX_TYPE + 1] = '\0';
    msg m;

    m = record("", 0, "i", 1, T0, NULL, false, 0);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "empty user_id");
    m = record("u", 1, "", 0, T0, NULL, false, 0);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "empty item_id");
    m = record("u\x01", 2, "i", 1, T0, NULL, false, 0);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "control character in user_id");
    m = record("u", 1, "i\0j", 3, T0, NULL, false, 0);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "control character in item_id");
    m = record("u\x7f", 2, "i", 1, T0, NULL, false, 0);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "control character in user_id");
    m = record("u", 1, "line\nbreak", 10, T0, NULL, false, 0);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "control character in item_id");
    m = record(long_id, EVENT_MAX_ID + 1, "i", 1, T0, NULL, false, 0);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "field too long: user_id");
    m = record("u", 1, long_id, EVENT_MAX_ID + 1, T0, NULL, false, 0);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "field too long: item_id");
    m = record("u", 1, "i", 1, T0, long_type, false, 0);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "field too long: event_type");
    m = record("u", 1, "i", 1, T0, "cl\tick", false, 0);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "control character in event_type");

    int64_t year_3000 = 32503680000000LL;
    int64_t bad_times[] = {-1, INT64_MIN, 0, MIN_T - 1, MAX_T + 1, year_3000, INT64_MAX};
    for (size_t k = 0; k < sizeof bad_times / sizeof bad_times[0]; k++) {
        m = record("u", 1, "i", 1, bad_times[k], NULL, false, 0);
        expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "event_time out of range");
    }
    float bad_weights[] = {NAN, -NAN, INFINITY, -INFINITY};
    for (size_t k = 0; k < sizeof bad_weights / sizeof bad_weights[0]; k++) {
        m = record("u", 1, "i", 1, T0, NULL, true, bad_weights[k]);
        expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "weight not finite");
    }
    m = record("u", 1, "i", 1, T0, NULL, true, -0.5f);
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "negative weight");
    m = record("u", 1, "i", 1, T0, NULL, true, -1e-40f); /* negative subnormal */
    expect_fail(c, EVENT_FORMAT_RAW, m.b, m.n, "negative weight");

    /* The boundaries themselves are fine. */
    ccd_event out;
    m = record(long_id, EVENT_MAX_ID, "i", 1, MIN_T, long_type + 1, true, 0.0f);
    expect_ok(c, EVENT_FORMAT_RAW, m.b, m.n, &out);
    assert_int_equal(strlen(out.user_id), EVENT_MAX_ID);
    assert_int_equal(strlen(out.event_type), EVENT_MAX_TYPE);
    m = record("u", 1, "i", 1, MAX_T, NULL, true, -0.0f);
    expect_ok(c, EVENT_FORMAT_RAW, m.b, m.n, &out);
    assert_true(out.event_time_ms == MAX_T);
}

/* Every strict prefix of a valid message fails cleanly, in every format that applies. */
static void every_prefix_fails(void **state)
{
    event_codec *c = *state;
    msg full = simple("user-prefix", "item-prefix");
    msg conf = {.n = 0};
    put_confluent(&conf, ID_READER);
    put_bytes(&conf, full.b, full.n);
    msg v2 = encode_with("interaction_v2.avsc", ID_V2, fill_v2);
    struct {
        const msg *m;
        event_format fmt;
    } cases[] = {{&full, EVENT_FORMAT_RAW},
                 {&full, EVENT_FORMAT_AUTO},
                 {&conf, EVENT_FORMAT_AUTO},
                 {&conf, EVENT_FORMAT_CONFLUENT},
                 {&v2, EVENT_FORMAT_AUTO}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const msg *m = cases[k].m;
        ccd_event out;
        expect_ok(c, cases[k].fmt, m->b, m->n, &out);
        for (size_t cut = 0; cut < m->n; cut++) {
            /* A copy of exactly cut bytes, so ASan sees any read past the end. */
            unsigned char *p = malloc(cut ? cut : 1);
            memcpy(p, m->b, cut);
            const char *want = cut == 0                   ? "empty message"
                               : m->b[0] == 0 && cut < 5  ? "short confluent frame"
                               : m->b[0] == 0 && cut == 5 ? "truncated"
                                                          : "";
            expect_fail(c, cases[k].fmt, p, cut, want);
            /* Raw records are a fixed sequence of fields: a prefix always ends inside one. */
            if (cases[k].m == &full && cut > 0)
                expect_fail(c, cases[k].fmt, p, cut, "truncated");
            free(p);
        }
    }
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

/* A successful decode always yields an event that obeys the header's rules. */
static void assert_valid_event(const ccd_event *ev)
{
    size_t ul = strnlen(ev->user_id, sizeof ev->user_id),
           il = strnlen(ev->item_id, sizeof ev->item_id);
    assert_true(ul > 0 && ul <= EVENT_MAX_ID && il > 0 && il <= EVENT_MAX_ID);
    for (size_t i = 0; i < ul; i++)
        assert_true((unsigned char)ev->user_id[i] >= 0x20 && ev->user_id[i] != 0x7f);
    for (size_t i = 0; i < il; i++)
        assert_true((unsigned char)ev->item_id[i] >= 0x20 && ev->item_id[i] != 0x7f);
    assert_true(ev->event_time_ms >= MIN_T && ev->event_time_ms <= MAX_T);
    assert_true(isfinite(ev->weight) && ev->weight >= 0);
    assert_true(ev->has_weight || ev->weight == 1.0f);
    assert_true(strnlen(ev->event_type, sizeof ev->event_type) <= EVENT_MAX_TYPE);
}

static void random_bit_flips(void **state)
{
    event_codec *c = *state;
    msg seeds[5];
    seeds[0] = simple("user-flip", "item-flip");
    seeds[1].n = 0;
    put_confluent(&seeds[1], ID_READER);
    put_bytes(&seeds[1], seeds[0].b, seeds[0].n);
    seeds[2] = encode_with("interaction_v2.avsc", ID_V2, fill_v2);
    seeds[3] = encode_with("interaction_v3_noweight.avsc", ID_V3, fill_v3);
    loose_variant = 0;
    seeds[4] = encode_with("interaction_loose.avsc", ID_LOOSE, fill_loose);

    rng_state = 0x9e3779b97f4a7c15ULL;
    long ok = 0, failed = 0;
    for (int iter = 0; iter < 50000; iter++) {
        const msg *s = &seeds[rnd() % 5];
        unsigned char p[sizeof s->b + 8];
        size_t n = s->n;
        memcpy(p, s->b, n);
        int flips = 1 + (int)(rnd() % 4);
        for (int f = 0; f < flips; f++) {
            size_t at = rnd() % n;
            if (rnd() % 4 == 0)
                p[at] = (unsigned char)rnd(); /* a whole byte */
            else
                p[at] ^= (unsigned char)(1u << (rnd() % 8));
        }
        /* Keep most Confluent headers intact so the bodies get exercised. */
        if (s->b[0] == 0 && rnd() % 8 != 0)
            memcpy(p, s->b, 5);
        if (rnd() % 8 == 0)
            n = rnd() % (n + 1); /* also truncate */
        else if (rnd() % 16 == 0)
            p[n++] = (unsigned char)rnd(); /* or extend */
        unsigned char *exact = malloc(n ? n : 1);
        memcpy(exact, p, n);
        ccd_event ev;
        char reason[128] = "";
        event_format fmt = (event_format)(rnd() % 3);
        int rc = event_decode(c, fmt, exact, n, &ev, reason, sizeof reason);
        free(exact);
        assert_true(rc == 0 || rc == -1);
        if (rc == 0) {
            assert_valid_event(&ev);
            ok++;
        } else {
            assert_true(reason[0] != '\0');
            failed++;
        }
    }
    if (getenv("CCD_TEST_VERBOSE"))
        fprintf(stderr, "bit flips: %ld decoded, %ld refused\n", ok, failed);
    /* Both outcomes happen: flips in string bytes or floats often still decode. */
    assert_true(ok > 0 && failed > 0);

    /* Pure noise of every small length. */
    for (int iter = 0; iter < 20000; iter++) {
        unsigned char p[64];
        size_t n = rnd() % sizeof p;
        for (size_t i = 0; i < n; i++)
            p[i] = (unsigned char)rnd();
        if (n >= 5 && rnd() % 2) {
            p[0] = 0;
            p[1] = p[2] = p[3] = 0;
            p[4] = (unsigned char)(1 + rnd() % 4);
        }
        ccd_event ev;
        char reason[128] = "";
        int rc = event_decode(c, EVENT_FORMAT_AUTO, p, n, &ev, reason, sizeof reason);
        assert_true(rc == 0 || rc == -1);
        if (rc == 0)
            assert_valid_event(&ev);
    }
}

/* Avro-C's allocations go through the codec's capped allocator. */
static void allocator_is_bounded(void **state)
{
    (void)state;
    void *small = avro_malloc(4096);
    assert_non_null(small);
    avro_free(small, 4096);
    assert_null(avro_malloc((size_t)1 << 40));
    assert_null(avro_malloc((size_t)64 << 20));
}

static void write_seed(const char *dir, const char *name, const msg *m)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(m->b, 1, m->n, f), m->n);
    fclose(f);
}

/* Seeds for the fuzz target, written only when asked to (CCD_WRITE_CORPUS=<dir>). */
static void fuzz_corpus(void **state)
{
    (void)state;
    const char *dir = getenv("CCD_WRITE_CORPUS");
    if (!dir)
        return;
    msg m, body = simple("user-1", "item-1");
    write_seed(dir, "raw_full.avro", &body);
    m = record("u", 1, "i", 1, T0, NULL, false, 0);
    write_seed(dir, "raw_minimal.avro", &m);
    m.n = 0;
    put_confluent(&m, ID_READER);
    put_bytes(&m, body.b, body.n);
    write_seed(dir, "confluent_id1.avro", &m);
    m = encode_with("interaction_v2.avsc", ID_V2, fill_v2);
    write_seed(dir, "confluent_id2_v2.avro", &m);
    m = encode_with("interaction_v3_noweight.avsc", ID_V3, fill_v3);
    write_seed(dir, "confluent_id3_v3.avro", &m);
    loose_variant = 1;
    m = encode_with("interaction_loose.avsc", ID_LOOSE, fill_loose);
    write_seed(dir, "confluent_id4_null_user.avro", &m);
    m = body;
    put_bytes(&m, "\0", 1);
    write_seed(dir, "raw_trailing.avro", &m);
    m.n = 0;
    put_long(&m, (int64_t)1 << 40);
    put_bytes(&m, "abcdefgh", 8);
    write_seed(dir, "raw_huge_length.avro", &m);
    m.n = 0;
    put_str(&m, "u", 1);
    put_str(&m, "i", 1);
    put_long(&m, T0);
    put_long(&m, 5);
    write_seed(dir, "raw_union_index.avro", &m);
}

/* ---- schemas from a lookup (the schema registry's side of the codec) ------------------------ */

/* What the lookup answers per id, and how often it was asked; a refusal arrives with json NULL. */
typedef struct {
    int calls, refusals;
    char refused[256];
} lookup_log;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static event_lookup_result test_lookup(void *ctx, int32_t id, char **json, size_t *len,
                                       char *reason, size_t reasonlen)
{
    lookup_log *l = ctx;
    if (!json) {
        l->refusals++;
        snprintf(l->refused, sizeof l->refused, "%s", reason);
        return EVENT_LOOKUP_MISSING;
    }
    l->calls++;
    switch (id) {
    case 50: /* tests/registry's v2: a field added at the end */
        *json = slurp(codec_path("../../registry/interaction_v2.avsc"), len);
        return EVENT_LOOKUP_FOUND;
    case 51:
        snprintf(reason, reasonlen, "registry unavailable: Timeout was reached");
        return EVENT_LOOKUP_UNAVAILABLE;
    case 52: { /* a record the reader cannot read */
        const char *other = "{\"type\":\"record\",\"name\":\"Other\",\"fields\":[]}";
        *json = strdup(other);
        *len = strlen(other);
        return EVENT_LOOKUP_FOUND;
    }
    default:
        snprintf(reason, reasonlen, "unknown schema id %d", (int)id);
        return EVENT_LOOKUP_MISSING;
    }
}

static void schemas_from_lookup(void **state)
{
    event_codec *c = *state;
    lookup_log log = {0};
    event_codec_set_lookup(c, test_lookup, &log);
    char err[256];
    event_codec *producer = event_codec_new(reader_path(), MIN_T, MAX_T, err, sizeof err);
    assert_non_null(producer);
    assert_int_equal(event_codec_encode_as(producer,
                                           codec_path("../../registry/interaction_v2.avsc"), err,
                                           sizeof err),
                     0);
    ccd_event in = make_event("u-reg", "i-reg", T0, "click", true, 2.5f), out;
    unsigned char *buf;
    size_t n;
    assert_int_equal(event_encode(producer, &in, 50, &buf, &n, err, sizeof err), 0);
    /* the reader's encoding plus one null union (the added field) */
    unsigned char *plain;
    size_t pn;
    assert_int_equal(event_encode(c, &in, 50, &plain, &pn, err, sizeof err), 0);
    assert_int_equal(n, pn + 1);
    free(plain);
    for (int i = 0; i < 3; i++) { /* fetched once, then from the codec's own entry */
        expect_ok(c, EVENT_FORMAT_CONFLUENT, buf, n, &out);
        assert_event_equal(&out, &in);
    }
    assert_int_equal(log.calls, 1);
    /* unavailable: a retry class, not a dead letter; asked again next time */
    buf[4] = 51;
    char reason[128];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            event_decode(c, EVENT_FORMAT_CONFLUENT, buf, n, &out, reason, sizeof reason), -1);
        assert_int_equal(event_last_reject(c), EVENT_REJECT_RETRY);
        assert_non_null(strstr(reason, "registry unavailable"));
    }
    assert_int_equal(log.calls, 3);
    assert_string_equal(event_reject_name(EVENT_REJECT_RETRY), "registry_unavailable");
    /* missing, and found but incompatible: unknown schema (dead letter); the refusal is reported */
    buf[4] = 53;
    expect_fail(c, EVENT_FORMAT_CONFLUENT, buf, n, "unknown schema id 53");
    buf[4] = 52;
    assert_int_equal(event_decode(c, EVENT_FORMAT_CONFLUENT, buf, n, &out, reason, sizeof reason),
                     -1);
    assert_int_equal(event_last_reject(c), EVENT_REJECT_SCHEMA);
    assert_non_null(strstr(reason, "does not match reader record"));
    assert_int_equal(log.refusals, 1);
    assert_string_equal(log.refused, reason);
    free(buf);
    event_codec_free(producer);
    event_codec_set_lookup(c, NULL, NULL);
}

/* encode_as refuses a schema that changes a reader field or adds a required one. */
static void encode_as_refuses_incompatible(void **state)
{
    (void)state;
    char err[256];
    event_codec *c = event_codec_new(reader_path(), MIN_T, MAX_T, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(event_codec_encode_as(c, codec_path("interaction_v2.avsc"), err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "tags")); /* an array, not an optional field */
    assert_int_equal(
        event_codec_encode_as(c, codec_path("interaction_v3_noweight.avsc"), err, sizeof err), -1);
    assert_non_null(strstr(err, "field event_type")); /* string where the reader has a union */
    event_codec_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format_parse),
        cmocka_unit_test(round_trip_raw),
        cmocka_unit_test(round_trip_confluent),
        cmocka_unit_test(encoder_matches_spec),
        cmocka_unit_test(auto_detection),
        cmocka_unit_test(evolved_writer_extra_fields),
        cmocka_unit_test(evolved_writer_missing_defaulted_field),
        cmocka_unit_test(writer_values_reader_cannot_hold),
        cmocka_unit_test(register_failures_name_the_file),
        cmocka_unit_test(schemas_from_lookup),
        cmocka_unit_test(encode_as_refuses_incompatible),
        cmocka_unit_test(encode_refuses_invalid_events),
        cmocka_unit_test(malformed_framing),
        cmocka_unit_test(malformed_encoding),
        cmocka_unit_test(malformed_fields),
        cmocka_unit_test(every_prefix_fails),
        cmocka_unit_test(random_bit_flips),
        cmocka_unit_test(allocator_is_bounded),
        cmocka_unit_test(fuzz_corpus),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
