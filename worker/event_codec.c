/* event_codec: Kafka message values <-> Interaction events with Avro-C. See event_codec.h.
 *
 * Every message is decoded in two passes:
 *   1. scan: a small validator walks the writer schema over the bytes and checks every varint,
 *      length, union index, enum index and block count against the end of the buffer, and that
 *      the record ends exactly at the end of the message. It allocates nothing.
 *   2. read: Avro-C reads the now well-formed bytes through a resolved writer (writer schema ->
 *      reader fields) into a generic value, which is then copied out and validated.
 * The first pass exists because Avro-C 1.11 trusts its input more than a consumer of a shared
 * topic can: it mallocs a string's declared length before comparing it with the buffer, it
 * indexes a writer union's branch table with the decoded index without a bounds check (a wild
 * read, not an error), and it skips an array of zero-size items (null, empty records) one item
 * at a time, so a count of 2^62 is a hang. The scanner stops all three before Avro-C sees the
 * bytes; a bounded allocator (below) is the second line of defence.
 *
 * Avro-C's resolver does not implement field defaults: a reader field that the writer lacks is
 * a resolution error. So for each writer schema we resolve against a projection of the reader
 * schema holding only the fields the writer has, and accept the projection when every dropped
 * field is optional (a union whose first branch is null, i.e. default null); absent fields then
 * decode as absent. */
#include "event_codec.h"
#include "errmsg.h"

#include <avro.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest single allocation Avro-C may make once a codec exists. Decoding a message of at most
 * EVENT_MAX_MESSAGE bytes never needs more than the message's size per allocation; schema
 * parsing and resolution allocate small structures. A hostile declared length that slips past
 * the scanner therefore becomes ENOMEM (a decode error) instead of a 1 TB malloc. */
#define AVRO_ALLOC_CAP ((size_t)1 << 20)

#define MAX_SCHEMA_FILE (1 << 20) /* bytes of JSON */
#define MAX_SCHEMA_DEPTH 32       /* nesting of records, arrays, maps and unions */
#define MAX_BRANCHES 64           /* union branches tracked per top-level field */

/* A writer schema and everything needed to read its records. The raw format uses an entry
 * whose writer schema is the reader schema itself. */
typedef struct {
    int32_t id;           /* Confluent schema id; -1 for the raw entry */
    avro_schema_t schema; /* writer schema */
    avro_schema_t target; /* reader fields the writer has (reader schema or projection) */
    avro_value_iface_t *target_class;
    avro_value_iface_t *resolver;
    avro_value_t value;     /* generic value of target */
    avro_value_t resolved;  /* resolved writer wrapping value */
    size_t n_fields;        /* top-level fields of the writer */
    uint64_t *bad_branches; /* per writer field: union branches the reader cannot hold */
} writer_entry;

struct event_codec {
    avro_schema_t reader;
    avro_value_iface_t *reader_class; /* for encoding */
    avro_value_t enc;
    avro_schema_t enc_schema; /* event_codec_encode_as's schema, or NULL: the reader's */
    size_t enc_extra;         /* its fields beyond the reader's (written null) */
    avro_reader_t in;
    int64_t min_time_ms, max_time_ms;
    writer_entry raw;
    writer_entry *writers;
    size_t n_writers;
    event_reject last_reject;   /* why the last event_decode failed */
    event_schema_lookup lookup; /* unknown Confluent ids, or NULL */
    void *lookup_ctx;
};

/* ---- allocator guard ---------------------------------------------------------------------- */

/* Same semantics as Avro-C's default allocator (realloc/free), so memory allocated before the
 * switch can be freed after it, plus the cap. The allocator is process-wide: it is installed
 * once, by the first event_codec_new, and stays. */
static void *bounded_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud, (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (nsize > AVRO_ALLOC_CAP)
        return NULL;
    return realloc(ptr, nsize);
}

static pthread_once_t alloc_once = PTHREAD_ONCE_INIT;

static void install_allocator(void)
{
    avro_set_allocator(bounded_alloc, NULL);
}

/* ---- small helpers ------------------------------------------------------------------------ */

static avro_schema_t deref(avro_schema_t s)
{
    while (is_avro_link(s))
        s = avro_schema_link_target(s);
    return s;
}

/* A record's field by name, or NULL. Avro-C's avro_schema_record_field_get does not check its
 * lookup and returns a wild pointer for a name the record lacks. */
static avro_schema_t field_get(avro_schema_t record, const char *name)
{
    int i = avro_schema_record_field_get_index(record, name);
    return i < 0 ? NULL : avro_schema_record_field_get_by_index(record, i);
}

static bool nullable(avro_schema_t s)
{
    s = deref(s);
    return is_avro_union(s) && avro_schema_union_size(s) > 0 &&
           is_avro_null(deref(avro_schema_union_branch(s, 0)));
}

/* Parse a schema's JSON text; what names the source in messages (a path, "schema id 7"). */
static int parse_schema(const char *json, size_t n, const char *what, avro_schema_t *out, char *err,
                        size_t errlen)
{
    if (avro_schema_from_json_length(json, n, out) != 0) {
        errmsg_set(err, errlen, "%s: not a valid Avro schema: %s", what, avro_strerror());
        return -1;
    }
    if (!is_avro_record(*out)) {
        errmsg_set(err, errlen, "%s: top-level type is %s, not a record", what,
                   avro_schema_type_name(*out));
        avro_schema_decref(*out);
        return -1;
    }
    return 0;
}

static int load_schema(const char *path, avro_schema_t *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        errmsg_set(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *json = malloc(MAX_SCHEMA_FILE + 1);
    size_t n = json ? fread(json, 1, MAX_SCHEMA_FILE + 1, f) : 0;
    bool bad = ferror(f) != 0;
    fclose(f);
    if (!json || bad || n > MAX_SCHEMA_FILE) {
        errmsg_set(err, errlen, "%s: %s", path,
                   !json ? "out of memory"
                   : bad ? "read error"
                         : "file too large");
        free(json);
        return -1;
    }
    int rc = parse_schema(json, n, path, out, err, errlen);
    free(json);
    return rc;
}

/* Smallest encoding of a value of s, in bytes. Schemas are known not to be recursive. */
static size_t min_size(avro_schema_t s)
{
    s = deref(s);
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return 0;
    case AVRO_FLOAT:
        return 4;
    case AVRO_DOUBLE:
        return 8;
    case AVRO_FIXED:
        return (size_t)avro_schema_fixed_size(s);
    case AVRO_RECORD: {
        size_t n = 0;
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            n += min_size(avro_schema_record_field_get_by_index(s, (int)i));
        return n;
    }
    default: /* a varint or a length comes first */
        return 1;
    }
}

/* Refuse what the scanner cannot bound: recursive named types (unbounded nesting), nesting
 * deeper than MAX_SCHEMA_DEPTH, and arrays whose items may encode to zero bytes (unbounded item
 * count per input byte). path holds the records on the way down, to detect recursion. */
static int check_shape(avro_schema_t s, avro_schema_t *path, int depth, char *why, size_t whylen)
{
    if (depth >= MAX_SCHEMA_DEPTH) {
        errmsg_set(why, whylen, "schema nested deeper than %d", MAX_SCHEMA_DEPTH);
        return -1;
    }
    s = deref(s);
    switch (avro_typeof(s)) {
    case AVRO_RECORD:
        for (int d = 0; d < depth; d++) {
            if (path[d] == s) {
                errmsg_set(why, whylen, "recursive type %s is not supported", avro_schema_name(s));
                return -1;
            }
        }
        path[depth] = s;
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            if (check_shape(avro_schema_record_field_get_by_index(s, (int)i), path, depth + 1, why,
                            whylen))
                return -1;
        return 0;
    case AVRO_ARRAY:
        if (min_size(avro_schema_array_items(s)) == 0) {
            errmsg_set(why, whylen, "array of zero-size items is not supported");
            return -1;
        }
        path[depth] = s;
        return check_shape(avro_schema_array_items(s), path, depth + 1, why, whylen);
    case AVRO_MAP:
        path[depth] = s;
        return check_shape(avro_schema_map_values(s), path, depth + 1, why, whylen);
    case AVRO_UNION:
        path[depth] = s;
        for (size_t i = 0; i < avro_schema_union_size(s); i++)
            if (check_shape(avro_schema_union_branch(s, (int)i), path, depth + 1, why, whylen))
                return -1;
        return 0;
    default:
        return 0;
    }
}

/* ---- scanner ------------------------------------------------------------------------------ */

typedef struct {
    const unsigned char *p, *end;
    const char *why;
} scanner;

static int scan_fail(scanner *s, const char *why)
{
    s->why = why;
    return -1;
}

static int scan_skip(scanner *s, uint64_t n)
{
    if (n > (uint64_t)(s->end - s->p))
        return scan_fail(s, "truncated");
    s->p += n;
    return 0;
}

/* A zigzag varint of at most 10 bytes whose tenth byte carries only bit 63, the same set of
 * encodings Avro-C accepts (it also reads at most 10 bytes), so both consume the same bytes. */
static int scan_long(scanner *s, int64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
        if (s->p == s->end)
            return scan_fail(s, "truncated");
        unsigned b = *s->p++;
        if (shift == 63 && b > 1)
            return scan_fail(s, "bad varint");
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    *out = (int64_t)((v >> 1) ^ (0 - (v & 1)));
    return 0;
}

static int scan_length(scanner *s, int64_t *n)
{
    if (scan_long(s, n))
        return -1;
    if (*n < 0)
        return scan_fail(s, "negative length");
    if (*n > EVENT_MAX_MESSAGE)
        return scan_fail(s, "length out of range");
    return scan_skip(s, (uint64_t)*n);
}

static int scan_value(scanner *s, avro_schema_t schema);

/* Arrays and maps: blocks of items until a zero count. Every item takes at least one byte (see
 * check_shape; map keys are strings), so a count above the bytes left is malformed. */
static int scan_blocks(scanner *s, avro_schema_t items, bool keyed)
{
    for (;;) {
        int64_t count, size, keylen;
        if (scan_long(s, &count))
            return -1;
        if (count == 0)
            return 0;
        if (count < 0) {
            if (count == INT64_MIN)
                return scan_fail(s, "bad block count");
            count = -count;
            if (scan_long(s, &size))
                return -1;
            if (size < 0)
                return scan_fail(s, "negative length");
        }
        if (count > s->end - s->p)
            return scan_fail(s, "bad block count");
        for (int64_t i = 0; i < count; i++) {
            if (keyed && scan_length(s, &keylen))
                return -1;
            if (scan_value(s, items))
                return -1;
        }
    }
}

static int scan_union_index(scanner *s, avro_schema_t u, int64_t *k)
{
    if (scan_long(s, k))
        return -1;
    if (*k < 0 || (uint64_t)*k >= avro_schema_union_size(u))
        return scan_fail(s, "union index out of range");
    return 0;
}

static int scan_value(scanner *s, avro_schema_t schema)
{
    schema = deref(schema);
    int64_t v;
    switch (avro_typeof(schema)) {
    case AVRO_NULL:
        return 0;
    case AVRO_BOOLEAN:
        if (s->p == s->end)
            return scan_fail(s, "truncated");
        if (*s->p > 1)
            return scan_fail(s, "bad boolean");
        s->p++;
        return 0;
    case AVRO_INT32:
        if (scan_long(s, &v))
            return -1;
        if (v < INT32_MIN || v > INT32_MAX)
            return scan_fail(s, "int out of range");
        return 0;
    case AVRO_INT64:
        return scan_long(s, &v);
    case AVRO_FLOAT:
        return scan_skip(s, 4);
    case AVRO_DOUBLE:
        return scan_skip(s, 8);
    case AVRO_STRING:
    case AVRO_BYTES:
        return scan_length(s, &v);
    case AVRO_FIXED:
        return scan_skip(s, (uint64_t)avro_schema_fixed_size(schema));
    case AVRO_ENUM:
        if (scan_long(s, &v))
            return -1;
        if (v < 0 || v >= avro_schema_enum_number_of_symbols(schema))
            return scan_fail(s, "enum index out of range");
        return 0;
    case AVRO_UNION:
        if (scan_union_index(s, schema, &v))
            return -1;
        return scan_value(s, avro_schema_union_branch(schema, (int)v));
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(schema); i++)
            if (scan_value(s, avro_schema_record_field_get_by_index(schema, (int)i)))
                return -1;
        return 0;
    case AVRO_ARRAY:
        return scan_blocks(s, avro_schema_array_items(schema), false);
    case AVRO_MAP:
        return scan_blocks(s, avro_schema_map_values(schema), true);
    default:
        return scan_fail(s, "unsupported writer type");
    }
}

/* The whole message body: the writer record, field by field, then nothing. A top-level union
 * whose chosen branch the reader cannot hold (null for user_id, say) is reported by field name
 * here, rather than as an opaque Avro-C error later. */
static int scan_message(const writer_entry *w, const unsigned char *p, size_t len, char *reason,
                        size_t reasonlen)
{
    scanner s = {p, p + len, NULL};
    for (size_t i = 0; i < w->n_fields; i++) {
        avro_schema_t f = deref(avro_schema_record_field_get_by_index(w->schema, (int)i));
        if (w->bad_branches[i] && is_avro_union(f)) {
            const unsigned char *at = s.p;
            int64_t k;
            if (scan_union_index(&s, f, &k))
                goto fail;
            if (k < MAX_BRANCHES && (w->bad_branches[i] >> k & 1)) {
                const char *name = avro_schema_record_field_name(w->schema, (int)i);
                if (is_avro_null(deref(avro_schema_union_branch(f, (int)k))))
                    errmsg_set(reason, reasonlen, "null %s", name);
                else
                    errmsg_set(reason, reasonlen, "incompatible type in %s", name);
                return -1;
            }
            s.p = at;
        }
        if (scan_value(&s, f))
            goto fail;
    }
    if (s.p != s.end) {
        errmsg_set(reason, reasonlen, "trailing bytes");
        return -1;
    }
    return 0;
fail:
    errmsg_set(reason, reasonlen, "%s", s.why);
    return -1;
}

/* ---- writer entries ----------------------------------------------------------------------- */

static void writer_done(writer_entry *w)
{
    if (w->resolved.self)
        avro_value_decref(&w->resolved);
    if (w->value.self)
        avro_value_decref(&w->value);
    if (w->resolver)
        avro_value_iface_decref(w->resolver);
    if (w->target_class)
        avro_value_iface_decref(w->target_class);
    if (w->target)
        avro_schema_decref(w->target);
    if (w->schema)
        avro_schema_decref(w->schema);
    free(w->bad_branches);
    memset(w, 0, sizeof *w);
}

/* w->target: the reader schema itself when the writer has every reader field, else the
 * projection of the reader onto the fields the writer has (a missing field must be nullable, as
 * the reader's default then fills it). 0, or -1 with the reason in why. */
static int writer_target(writer_entry *w, avro_schema_t reader, avro_schema_t ws, char *why,
                         size_t whylen)
{
    size_t nr = avro_schema_record_size(reader);
    bool all = true;
    for (size_t i = 0; i < nr; i++) {
        const char *name = avro_schema_record_field_name(reader, (int)i);
        if (avro_schema_record_field_get_index(ws, name) >= 0)
            continue;
        if (!nullable(avro_schema_record_field_get_by_index(reader, (int)i))) {
            errmsg_set(why, whylen, "field %s is missing and has no default", name);
            return -1;
        }
        all = false;
    }
    if (all) {
        w->target = avro_schema_incref(reader);
        return 0;
    }
    w->target = avro_schema_record(avro_schema_name(reader), avro_schema_namespace(reader));
    if (!w->target)
        goto avro_fail;
    for (size_t i = 0; i < nr; i++) {
        const char *name = avro_schema_record_field_name(reader, (int)i);
        if (avro_schema_record_field_get_index(ws, name) >= 0 &&
            avro_schema_record_field_append(w->target, name,
                                            avro_schema_record_field_get_by_index(reader, (int)i)))
            goto avro_fail;
    }
    return 0;
avro_fail:
    errmsg_set(why, whylen, "%s", avro_strerror());
    return -1;
}

/* w->bad_branches: per top-level writer field, the union branches that the reader's field cannot
 * hold, which scan_message reports by field name. 0, or -1 with the reason in why. */
static int writer_bad_branches(writer_entry *w, avro_schema_t reader, avro_schema_t ws, char *why,
                               size_t whylen)
{
    w->n_fields = avro_schema_record_size(ws);
    w->bad_branches = calloc(w->n_fields ? w->n_fields : 1, sizeof *w->bad_branches);
    if (!w->bad_branches) {
        errmsg_set(why, whylen, "%s", avro_strerror());
        return -1;
    }
    for (size_t i = 0; i < w->n_fields; i++) {
        avro_schema_t f = deref(avro_schema_record_field_get_by_index(ws, (int)i));
        avro_schema_t rf = field_get(reader, avro_schema_record_field_name(ws, (int)i));
        if (!rf || !is_avro_union(f))
            continue;
        size_t nb = avro_schema_union_size(f);
        for (size_t k = 0; k < nb && k < MAX_BRANCHES; k++) {
            avro_value_iface_t *r =
                avro_resolved_writer_new(avro_schema_union_branch(f, (int)k), rf);
            if (r)
                avro_value_iface_decref(r);
            else
                w->bad_branches[i] |= (uint64_t)1 << k;
        }
    }
    return 0;
}

/* Set up w for writer schema ws (a reference is taken). why gets the reason on failure. */
static int writer_init(writer_entry *w, avro_schema_t reader, avro_schema_t ws, int32_t id,
                       char *why, size_t whylen)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->schema = avro_schema_incref(ws);

    avro_schema_t path[MAX_SCHEMA_DEPTH];
    if (check_shape(ws, path, 0, why, whylen))
        goto fail;
    if (strcmp(avro_schema_name(ws), avro_schema_name(reader)) != 0) {
        errmsg_set(why, whylen, "record name %s does not match reader record %s",
                   avro_schema_name(ws), avro_schema_name(reader));
        goto fail;
    }
    if (writer_target(w, reader, ws, why, whylen) != 0)
        goto fail;
    w->resolver = avro_resolved_writer_new(ws, w->target);
    if (!w->resolver) {
        errmsg_set(why, whylen, "incompatible with the reader schema: %s", avro_strerror());
        goto fail;
    }
    w->target_class = avro_generic_class_from_schema(w->target);
    if (!w->target_class || avro_generic_value_new(w->target_class, &w->value) ||
        avro_resolved_writer_new_value(w->resolver, &w->resolved)) {
        errmsg_set(why, whylen, "%s", avro_strerror());
        goto fail;
    }
    avro_resolved_writer_set_dest(&w->resolved, &w->value);
    if (writer_bad_branches(w, reader, ws, why, whylen) != 0)
        goto fail;
    return 0;
fail:
    writer_done(w);
    return -1;
}

/* ---- public API --------------------------------------------------------------------------- */

static const struct {
    const char *name;
    avro_type_t type, branch; /* branch: the non-null branch of an optional field */
} reader_fields[] = {
    {"user_id", AVRO_STRING, AVRO_STRING},  {"item_id", AVRO_STRING, AVRO_STRING},
    {"event_time", AVRO_INT64, AVRO_INT64}, {"event_type", AVRO_UNION, AVRO_STRING},
    {"weight", AVRO_UNION, AVRO_FLOAT},
};
#define N_READER_FIELDS (sizeof reader_fields / sizeof reader_fields[0])

/* The codec fills ccd_event from exactly these fields, so check the reader schema has them. */
static int check_reader(avro_schema_t r, const char *path, char *err, size_t errlen)
{
    if (avro_schema_record_size(r) != N_READER_FIELDS) {
        errmsg_set(err, errlen, "%s: expected %zu fields, found %zu", path, N_READER_FIELDS,
                   avro_schema_record_size(r));
        return -1;
    }
    for (size_t i = 0; i < N_READER_FIELDS; i++) {
        avro_schema_t f = field_get(r, reader_fields[i].name);
        bool ok = f && avro_typeof(f = deref(f)) == reader_fields[i].type;
        if (ok && reader_fields[i].type == AVRO_UNION)
            ok = avro_schema_union_size(f) == 2 && nullable(f) &&
                 avro_typeof(deref(avro_schema_union_branch(f, 1))) == reader_fields[i].branch;
        if (!ok) {
            errmsg_set(err, errlen, "%s: field %s is missing or has an unexpected type", path,
                       reader_fields[i].name);
            return -1;
        }
    }
    return 0;
}

event_codec *event_codec_new(const char *reader_schema_path, int64_t min_time_ms,
                             int64_t max_time_ms, char *err, size_t errlen)
{
    if (min_time_ms > max_time_ms) {
        errmsg_set(err, errlen, "event time range is empty");
        return NULL;
    }
    pthread_once(&alloc_once, install_allocator);
    event_codec *c = calloc(1, sizeof *c);
    if (!c) {
        errmsg_set(err, errlen, "out of memory");
        return NULL;
    }
    c->min_time_ms = min_time_ms;
    c->max_time_ms = max_time_ms;
    char why[256];
    if (load_schema(reader_schema_path, &c->reader, err, errlen) ||
        check_reader(c->reader, reader_schema_path, err, errlen))
        goto fail;
    if (writer_init(&c->raw, c->reader, c->reader, -1, why, sizeof why)) {
        errmsg_set(err, errlen, "%s: %s", reader_schema_path, why);
        goto fail;
    }
    c->reader_class = avro_generic_class_from_schema(c->reader);
    if (!c->reader_class || avro_generic_value_new(c->reader_class, &c->enc) ||
        !(c->in = avro_reader_memory("", 0))) {
        errmsg_set(err, errlen, "%s: %s", reader_schema_path, avro_strerror());
        goto fail;
    }
    return c;
fail:
    event_codec_free(c);
    return NULL;
}

void event_codec_free(event_codec *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_writers; i++)
        writer_done(&c->writers[i]);
    free(c->writers);
    writer_done(&c->raw);
    if (c->in)
        avro_reader_free(c->in);
    if (c->enc.self)
        avro_value_decref(&c->enc);
    if (c->reader_class)
        avro_value_iface_decref(c->reader_class);
    if (c->enc_schema)
        avro_schema_decref(c->enc_schema);
    if (c->reader)
        avro_schema_decref(c->reader);
    free(c);
}

static writer_entry *find_writer(event_codec *c, int32_t id)
{
    for (size_t i = 0; i < c->n_writers; i++)
        if (c->writers[i].id == id)
            return &c->writers[i];
    return NULL;
}

/* Add writer schema ws (a reference is taken) under schema_id; what names its source. */
static int add_writer(event_codec *c, int32_t schema_id, avro_schema_t ws, const char *what,
                      char *err, size_t errlen)
{
    writer_entry *grown = realloc(c->writers, (c->n_writers + 1) * sizeof *grown);
    if (!grown) {
        errmsg_set(err, errlen, "%s: out of memory", what);
        return -1;
    }
    c->writers = grown;
    char why[256];
    if (writer_init(&c->writers[c->n_writers], c->reader, ws, schema_id, why, sizeof why)) {
        errmsg_set(err, errlen, "%s (schema id %" PRId32 "): %s", what, schema_id, why);
        return -1;
    }
    c->n_writers++;
    return 0;
}

static int check_new_id(event_codec *c, int32_t schema_id, const char *what, char *err,
                        size_t errlen)
{
    if (schema_id < 0) {
        errmsg_set(err, errlen, "%s: schema id %" PRId32 " is negative", what, schema_id);
        return -1;
    }
    if (find_writer(c, schema_id)) {
        errmsg_set(err, errlen, "%s: schema id %" PRId32 " is already registered", what, schema_id);
        return -1;
    }
    return 0;
}

int event_codec_register(event_codec *c, int32_t schema_id, const char *writer_schema_path,
                         char *err, size_t errlen)
{
    avro_schema_t ws;
    if (check_new_id(c, schema_id, writer_schema_path, err, errlen) ||
        load_schema(writer_schema_path, &ws, err, errlen))
        return -1;
    int rc = add_writer(c, schema_id, ws, writer_schema_path, err, errlen);
    avro_schema_decref(ws);
    return rc;
}

int event_codec_register_json(event_codec *c, int32_t schema_id, const char *json, size_t len,
                              char *err, size_t errlen)
{
    char what[32];
    snprintf(what, sizeof what, "schema id %" PRId32, schema_id);
    if (len > MAX_SCHEMA_FILE) {
        errmsg_set(err, errlen, "%s: schema too large", what);
        return -1;
    }
    avro_schema_t ws;
    if (check_new_id(c, schema_id, what, err, errlen) ||
        parse_schema(json, len, what, &ws, err, errlen))
        return -1;
    int rc = add_writer(c, schema_id, ws, what, err, errlen);
    avro_schema_decref(ws);
    return rc;
}

void event_codec_set_lookup(event_codec *c, event_schema_lookup lookup, void *ctx)
{
    c->lookup = lookup;
    c->lookup_ctx = ctx;
}

/* The writer of an id the codec has not seen: asks the lookup (the schema registry), registers
 * what it returns, and reports a schema that does not resolve back to the lookup (so that it is
 * not fetched again for every message). NULL with reason and c->last_reject set otherwise. */
static writer_entry *lookup_writer(event_codec *c, int32_t id, char *reason, size_t reasonlen)
{
    c->last_reject = EVENT_REJECT_SCHEMA;
    if (!c->lookup) {
        errmsg_set(reason, reasonlen, "unknown schema id %" PRId32, id);
        return NULL;
    }
    char *json = NULL;
    size_t len = 0;
    event_lookup_result r = c->lookup(c->lookup_ctx, id, &json, &len, reason, reasonlen);
    if (r == EVENT_LOOKUP_UNAVAILABLE)
        c->last_reject = EVENT_REJECT_RETRY;
    if (r != EVENT_LOOKUP_FOUND)
        return NULL;
    int rc = event_codec_register_json(c, id, json, len, reason, reasonlen);
    free(json);
    if (rc != 0) {
        c->lookup(c->lookup_ctx, id, NULL, NULL, reason, reasonlen); /* remember the refusal */
        return NULL;
    }
    return &c->writers[c->n_writers - 1];
}

/* Ids: non-empty, at most EVENT_MAX_ID bytes, no NUL or control characters. */
static int check_text(const char *name, const char *s, size_t n, size_t max, bool need,
                      char *reason, size_t reasonlen)
{
    if (need && n == 0) {
        errmsg_set(reason, reasonlen, "empty %s", name);
        return -1;
    }
    if (n > max) {
        errmsg_set(reason, reasonlen, "field too long: %s", name);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            errmsg_set(reason, reasonlen, "control character in %s", name);
            return -1;
        }
    }
    return 0;
}

static int check_numbers(const event_codec *c, int64_t t, bool has_weight, float weight,
                         char *reason, size_t reasonlen)
{
    if (t < c->min_time_ms || t > c->max_time_ms) {
        errmsg_set(reason, reasonlen, "event_time out of range");
        return -1;
    }
    if (has_weight && !isfinite(weight)) {
        errmsg_set(reason, reasonlen, "weight not finite");
        return -1;
    }
    if (has_weight && weight < 0) {
        errmsg_set(reason, reasonlen, "negative weight");
        return -1;
    }
    return 0;
}

static int get_text(avro_value_t *v, const char **s, size_t *n)
{
    size_t size;
    if (avro_value_get_string(v, s, &size) || size == 0)
        return -1;
    *n = size - 1; /* Avro-C counts the terminating NUL */
    return 0;
}

/* Copy the decoded value of w into ev, validating as the header says. */
static int extract(event_codec *c, writer_entry *w, ccd_event *ev, char *reason, size_t reasonlen)
{
    avro_value_t f, b;
    const char *s;
    size_t n;

    memset(ev, 0, sizeof *ev);
    if (avro_value_get_by_name(&w->value, "user_id", &f, NULL) || get_text(&f, &s, &n))
        goto fail;
    if (check_text("user_id", s, n, EVENT_MAX_ID, true, reason, reasonlen))
        goto bad_field;
    memcpy(ev->user_id, s, n);
    if (avro_value_get_by_name(&w->value, "item_id", &f, NULL) || get_text(&f, &s, &n))
        goto fail;
    if (check_text("item_id", s, n, EVENT_MAX_ID, true, reason, reasonlen))
        goto bad_field;
    memcpy(ev->item_id, s, n);
    if (avro_value_get_by_name(&w->value, "event_time", &f, NULL) ||
        avro_value_get_long(&f, &ev->event_time_ms))
        goto fail;

    /* Optional fields: absent from the projection, or the null branch, means absent. */
    if (avro_value_get_by_name(&w->value, "event_type", &f, NULL) == 0) {
        if (avro_value_get_current_branch(&f, &b))
            goto fail;
        if (avro_value_get_type(&b) == AVRO_STRING) {
            if (get_text(&b, &s, &n))
                goto fail;
            if (check_text("event_type", s, n, EVENT_MAX_TYPE, false, reason, reasonlen))
                goto bad_field;
            memcpy(ev->event_type, s, n);
            ev->has_type = true;
        }
    }
    ev->weight = 1;
    if (avro_value_get_by_name(&w->value, "weight", &f, NULL) == 0) {
        if (avro_value_get_current_branch(&f, &b))
            goto fail;
        if (avro_value_get_type(&b) == AVRO_FLOAT) {
            if (avro_value_get_float(&b, &ev->weight))
                goto fail;
            ev->has_weight = true;
        }
    }
    if (check_numbers(c, ev->event_time_ms, ev->has_weight, ev->weight, reason, reasonlen))
        goto bad_field;
    return 0;
bad_field:
    c->last_reject = EVENT_REJECT_FIELD;
    memset(ev, 0, sizeof *ev);
    return -1;
fail:
    c->last_reject = EVENT_REJECT_DECODE;
    if (reason && reasonlen && !reason[0])
        errmsg_set(reason, reasonlen, "unreadable value");
    memset(ev, 0, sizeof *ev);
    return -1;
}

int event_decode(event_codec *c, event_format fmt, const void *buf, size_t len, ccd_event *ev,
                 char *reason, size_t reasonlen)
{
    const unsigned char *p = buf;
    writer_entry *w = &c->raw;

    if (reason && reasonlen)
        reason[0] = '\0';
    c->last_reject = EVENT_REJECT_FRAME;
    if (len == 0 || !p) {
        errmsg_set(reason, reasonlen, "empty message");
        return -1;
    }
    if (len > EVENT_MAX_MESSAGE) {
        errmsg_set(reason, reasonlen, "message too large");
        return -1;
    }
    if (fmt == EVENT_FORMAT_AUTO)
        fmt = p[0] == 0x00 ? EVENT_FORMAT_CONFLUENT : EVENT_FORMAT_RAW;
    if (fmt == EVENT_FORMAT_CONFLUENT) {
        if (p[0] != 0x00) {
            errmsg_set(reason, reasonlen, "bad magic byte 0x%02x", p[0]);
            return -1;
        }
        if (len < 5) {
            errmsg_set(reason, reasonlen, "short confluent frame");
            return -1;
        }
        int32_t id =
            (int32_t)((uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4]);
        w = find_writer(c, id);
        if (!w && !(w = lookup_writer(c, id, reason, reasonlen)))
            return -1;
        p += 5;
        len -= 5;
    }
    c->last_reject = EVENT_REJECT_DECODE;
    if (scan_message(w, p, len, reason, reasonlen))
        return -1;
    avro_reader_memory_set_source(c->in, (const char *)p, (int64_t)len);
    if (avro_value_read(c->in, &w->resolved)) {
        errmsg_set(reason, reasonlen, "unreadable value");
        return -1;
    }
    return extract(c, w, ev, reason, reasonlen);
}

int event_codec_encode_as(event_codec *c, const char *writer_schema_path, char *err, size_t errlen)
{
    avro_schema_t ws;
    if (load_schema(writer_schema_path, &ws, err, errlen))
        return -1;
    size_t extra = 0;
    for (size_t i = 0; i < avro_schema_record_size(ws); i++) {
        const char *name = avro_schema_record_field_name(ws, (int)i);
        avro_schema_t f = avro_schema_record_field_get_by_index(ws, (int)i);
        avro_schema_t rf = field_get(c->reader, name);
        bool ok = rf ? avro_schema_equal(deref(f), deref(rf)) : nullable(f);
        if (!ok) {
            errmsg_set(err, errlen, "%s: field %s must be the reader's, or optional (null first)",
                       writer_schema_path, name);
            avro_schema_decref(ws);
            return -1;
        }
        extra += !rf;
    }
    if (avro_schema_record_size(ws) != avro_schema_record_size(c->reader) + extra) {
        errmsg_set(err, errlen, "%s: lacks fields of the reader schema", writer_schema_path);
        avro_schema_decref(ws);
        return -1;
    }
    avro_value_iface_t *cls = avro_generic_class_from_schema(ws);
    avro_value_t v;
    if (!cls || avro_generic_value_new(cls, &v)) {
        errmsg_set(err, errlen, "%s: %s", writer_schema_path, avro_strerror());
        if (cls)
            avro_value_iface_decref(cls);
        avro_schema_decref(ws);
        return -1;
    }
    avro_value_decref(&c->enc);
    avro_value_iface_decref(c->reader_class);
    if (c->enc_schema)
        avro_schema_decref(c->enc_schema);
    c->reader_class = cls;
    c->enc = v;
    c->enc_schema = ws;
    c->enc_extra = extra;
    return 0;
}

/* The encoding schema's fields that the reader lacks: null (their first branch). */
static int set_extra_null(event_codec *c)
{
    if (!c->enc_schema)
        return 0;
    for (size_t i = 0; i < avro_schema_record_size(c->enc_schema); i++) {
        const char *name = avro_schema_record_field_name(c->enc_schema, (int)i);
        avro_value_t f, b;
        if (field_get(c->reader, name))
            continue;
        if (avro_value_get_by_name(&c->enc, name, &f, NULL) || avro_value_set_branch(&f, 0, &b) ||
            avro_value_set_null(&b))
            return -1;
    }
    return 0;
}

static int set_text(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f;
    return avro_value_get_by_name(rec, name, &f, NULL) ||
           avro_value_set_string_len(&f, s, strlen(s) + 1);
}

int event_encode(event_codec *c, const ccd_event *ev, int32_t schema_id, unsigned char **out,
                 size_t *outlen, char *err, size_t errlen)
{
    *out = NULL;
    *outlen = 0;
    size_t ulen = strnlen(ev->user_id, sizeof ev->user_id);
    size_t ilen = strnlen(ev->item_id, sizeof ev->item_id);
    size_t tlen = ev->has_type ? strnlen(ev->event_type, sizeof ev->event_type) : 0;
    if (check_text("user_id", ev->user_id, ulen, EVENT_MAX_ID, true, err, errlen) ||
        check_text("item_id", ev->item_id, ilen, EVENT_MAX_ID, true, err, errlen) ||
        check_text("event_type", ev->event_type, tlen, EVENT_MAX_TYPE, false, err, errlen) ||
        check_numbers(c, ev->event_time_ms, ev->has_weight, ev->weight, err, errlen))
        return -1;

    avro_value_t *rec = &c->enc, f, b;
    avro_value_reset(rec);
    if (set_text(rec, "user_id", ev->user_id) || set_text(rec, "item_id", ev->item_id) ||
        avro_value_get_by_name(rec, "event_time", &f, NULL) ||
        avro_value_set_long(&f, ev->event_time_ms) ||
        avro_value_get_by_name(rec, "event_type", &f, NULL) ||
        avro_value_set_branch(&f, ev->has_type, &b) ||
        (ev->has_type ? avro_value_set_string_len(&b, ev->event_type, tlen + 1)
                      : avro_value_set_null(&b)) ||
        avro_value_get_by_name(rec, "weight", &f, NULL) ||
        avro_value_set_branch(&f, ev->has_weight, &b) ||
        (ev->has_weight ? avro_value_set_float(&b, ev->weight) : avro_value_set_null(&b)) ||
        set_extra_null(c)) {
        errmsg_set(err, errlen, "encode: %s", avro_strerror());
        return -1;
    }

    /* Varint lengths and longs take at most 10 bytes, union indexes 1, the float 4. */
    size_t head = schema_id >= 0 ? 5 : 0;
    size_t cap = head + (10 + ulen) + (10 + ilen) + 10 + (1 + 10 + tlen) + (1 + 4) + c->enc_extra;
    unsigned char *buf = malloc(cap);
    avro_writer_t wr =
        buf ? avro_writer_memory((const char *)buf + head, (int64_t)(cap - head)) : NULL;
    if (!wr || avro_value_write(wr, rec)) {
        errmsg_set(err, errlen, "encode: %s", buf && wr ? avro_strerror() : "out of memory");
        if (wr)
            avro_writer_free(wr);
        free(buf);
        return -1;
    }
    size_t n = (size_t)avro_writer_tell(wr);
    avro_writer_free(wr);
    if (head) {
        uint32_t id = (uint32_t)schema_id;
        buf[0] = 0x00;
        buf[1] = (unsigned char)(id >> 24);
        buf[2] = (unsigned char)(id >> 16);
        buf[3] = (unsigned char)(id >> 8);
        buf[4] = (unsigned char)id;
    }
    *out = buf;
    *outlen = head + n;
    return 0;
}

int event_format_parse(const char *s, event_format *out)
{
    if (!s)
        return -1;
    if (!strcmp(s, "auto"))
        *out = EVENT_FORMAT_AUTO;
    else if (!strcmp(s, "raw"))
        *out = EVENT_FORMAT_RAW;
    else if (!strcmp(s, "confluent"))
        *out = EVENT_FORMAT_CONFLUENT;
    else
        return -1;
    return 0;
}

event_reject event_last_reject(const event_codec *c)
{
    return c->last_reject;
}

const char *event_reject_name(event_reject r)
{
    static const char *const names[] = {"none",        "frame",         "unknown_schema",
                                        "undecodable", "invalid_field", "registry_unavailable"};
    return r >= EVENT_REJECT_NONE && r <= EVENT_REJECT_RETRY ? names[r] : "?";
}
