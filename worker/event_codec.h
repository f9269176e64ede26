/* event_codec: Kafka message values <-> Interaction events (schemas/interaction.avsc), with Avro-C.
 *
 * Two wire formats are accepted:
 *   raw        the Avro binary encoding of one record written with the reader schema itself;
 *   confluent  magic byte 0x00, a 4-byte big-endian schema id, then the Avro binary encoding
 *              written with that schema. Schema ids are mapped to writer schema files in the
 *              config (and, with a lookup set, fetched from a schema registry the first time an
 *              id is seen: schema_registry.h); each writer schema is resolved against the reader
 *              schema once, at registration, so a producer may add fields (ignored) or drop
 *              fields that have defaults, and an incompatible writer schema file is refused at
 *              start-up, not per message (one from the registry dead-letters its messages).
 * In auto mode the first byte decides: 0x00 is Confluent (a raw record can never start with 0x00,
 * because its first field, user_id, is a non-empty string whose length byte is nonzero).
 *
 * Decoding never trusts the bytes: every failure returns -1 with a short, stable reason (the
 * dead-letter header value), e.g. "truncated", "bad magic byte 0x05", "unknown schema id 7",
 * "empty user_id", "event_time out of range", "trailing bytes", "field too long: item_id".
 * Decoded events are validated: ids non-empty, at most EVENT_MAX_ID bytes, no NUL or control
 * characters; event_time within [min_time_ms, max_time_ms]; weight finite and >= 0; event_type
 * at most EVENT_MAX_TYPE bytes. */
#ifndef CCD_EVENT_CODEC_H
#define CCD_EVENT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_MAX_ID 256
#define EVENT_MAX_TYPE 64
#define EVENT_MAX_MESSAGE (64 * 1024) /* larger message values are refused before decoding */

typedef struct {
    char user_id[EVENT_MAX_ID + 1]; /* NUL-terminated */
    char item_id[EVENT_MAX_ID + 1];
    int64_t event_time_ms; /* ms since the Unix epoch, UTC */
    bool has_type;
    char event_type[EVENT_MAX_TYPE + 1];
    bool has_weight;
    float weight; /* 1 when absent */
} ccd_event;

typedef enum { EVENT_FORMAT_AUTO = 0, EVENT_FORMAT_RAW, EVENT_FORMAT_CONFLUENT } event_format;

typedef struct event_codec event_codec;

/* The reader schema is read from reader_schema_path (schemas/interaction.avsc). Event times
 * outside [min_time_ms, max_time_ms] are refused. Returns NULL with a message in err. */
event_codec *event_codec_new(const char *reader_schema_path, int64_t min_time_ms,
                             int64_t max_time_ms, char *err, size_t errlen);
void event_codec_free(event_codec *c);

/* Map a Confluent schema id to a writer schema file. Fails (message naming the file) when the
 * file is unreadable, not a valid schema, or cannot be resolved to the reader schema. */
int event_codec_register(event_codec *c, int32_t schema_id, const char *writer_schema_path,
                         char *err, size_t errlen);

/* The same from a schema's JSON text (a schema registry's answer); errors name "schema id N". */
int event_codec_register_json(event_codec *c, int32_t schema_id, const char *json, size_t len,
                              char *err, size_t errlen);

/* Where the codec asks for the writer schema of a Confluent id it has no entry for. FOUND sets
 * *json (malloc'd, freed by the codec) and *len; MISSING (the id does not exist) and UNAVAILABLE
 * (could not ask: retry later) set reason. When a FOUND schema does not resolve against the
 * reader schema, the codec calls the lookup again with json == NULL and the reason, so that it
 * can remember the refusal; the return value is then ignored. */
typedef enum {
    EVENT_LOOKUP_FOUND,
    EVENT_LOOKUP_MISSING,
    EVENT_LOOKUP_UNAVAILABLE
} event_lookup_result;
typedef event_lookup_result (*event_schema_lookup)(void *ctx, int32_t id, char **json, size_t *len,
                                                   char *reason, size_t reasonlen);
void event_codec_set_lookup(event_codec *c, event_schema_lookup lookup, void *ctx);

/* Decode one message value. Returns 0 with *ev filled, or -1 with a reason in reason. Never
 * crashes and never allocates more than a small multiple of len on hostile input. */
int event_decode(event_codec *c, event_format fmt, const void *buf, size_t len, ccd_event *ev,
                 char *reason, size_t reasonlen);

/* Why the last event_decode on c failed, as a small set of classes for metrics (the reason
 * string says more): the framing (empty, too large, bad magic byte, short Confluent frame), an
 * unknown Confluent schema id, a value that does not decode with its writer schema, or a field
 * that decodes but is invalid (empty or oversized id, control characters, event time out of
 * range, bad weight); RETRY: the schema id's lookup could not be made (registry down), which
 * is no fault of the message: do not dead-letter it, read it again later. */
typedef enum {
    EVENT_REJECT_NONE,
    EVENT_REJECT_FRAME,
    EVENT_REJECT_SCHEMA,
    EVENT_REJECT_DECODE,
    EVENT_REJECT_FIELD,
    EVENT_REJECT_RETRY,
} event_reject;
event_reject event_last_reject(const event_codec *c);
/* "frame", "unknown_schema", "undecodable", "invalid_field", "registry_unavailable" (the
 * metric's reason label) */
const char *event_reject_name(event_reject r);

/* Encode with the reader schema: raw when schema_id < 0, else Confluent framing with that id.
 * *out is malloc'd. Returns 0 or -1 (invalid event, message in err). For producers (ccd-replay)
 * and tests. */
int event_encode(event_codec *c, const ccd_event *ev, int32_t schema_id, unsigned char **out,
                 size_t *outlen, char *err, size_t errlen);

/* Encode with another schema from now on: the reader's fields (same types) plus optional fields
 * (a union whose first branch is null), which are written null; what a producer of an evolved
 * schema sends (ccd-replay --writer-schema, tests). Returns 0 or -1 with err. */
int event_codec_encode_as(event_codec *c, const char *writer_schema_path, char *err, size_t errlen);

/* Parse "auto" | "raw" | "confluent". Returns 0 or -1. */
int event_format_parse(const char *s, event_format *out);

#endif
