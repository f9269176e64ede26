/* avro_bytes: Avro binary written by hand, for tests that need the Interaction record
 * (schemas/interaction.avsc) without Avro-C, or that must write what a real encoder refuses
 * (truncated fields, wrong union branches, absurd lengths, trailing bytes). Header-only.
 *
 * The encoding (Avro spec, "Binary Encoding"): long = zigzag varint; string = long length, then
 * the bytes; float = 4 bytes little-endian; union = long branch index, then the value. The
 * Confluent frame is a 0 byte and the big-endian 4-byte schema id before the record. */
#ifndef CCD_AVRO_BYTES_H
#define CCD_AVRO_BYTES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char b[80000]; /* the largest test message: a 70 kB id */
    size_t n;
} avro_bytes;

static inline void avro_put_bytes(avro_bytes *m, const void *p, size_t n)
{
    if (n > sizeof m->b - m->n) {
        fprintf(stderr, "avro_bytes: %zu bytes do not fit after %zu\n", n, m->n);
        abort();
    }
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static inline void avro_put_long(avro_bytes *m, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z > 0x7f) {
        unsigned char b = (unsigned char)(z | 0x80);
        avro_put_bytes(m, &b, 1);
        z >>= 7;
    }
    unsigned char b = (unsigned char)z;
    avro_put_bytes(m, &b, 1);
}

static inline void avro_put_string(avro_bytes *m, const char *s, size_t len)
{
    avro_put_long(m, (int64_t)len);
    avro_put_bytes(m, s, len);
}

static inline void avro_put_float(avro_bytes *m, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                          (unsigned char)(u >> 24)};
    avro_put_bytes(m, b, 4);
}

static inline void avro_put_confluent(avro_bytes *m, uint32_t schema_id)
{
    unsigned char h[5] = {0, (unsigned char)(schema_id >> 24), (unsigned char)(schema_id >> 16),
                          (unsigned char)(schema_id >> 8), (unsigned char)schema_id};
    avro_put_bytes(m, h, 5);
}

/* One Interaction record in the reader schema's field order: user_id, item_id, event_time,
 * event_type (null when type is NULL), weight (null unless has_weight). */
static inline void avro_put_interaction(avro_bytes *m, const char *user, const char *item,
                                        int64_t event_time, const char *type, bool has_weight,
                                        float weight)
{
    avro_put_string(m, user, strlen(user));
    avro_put_string(m, item, strlen(item));
    avro_put_long(m, event_time);
    avro_put_long(m, type ? 1 : 0);
    if (type)
        avro_put_string(m, type, strlen(type));
    avro_put_long(m, has_weight ? 1 : 0);
    if (has_weight)
        avro_put_float(m, weight);
}

#endif
