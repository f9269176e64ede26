/* le: the one little-endian byte codec, CRC and checksummed frame of the project, shared by the
 * engine state (state.c), the worker's checkpoints (checkpoint.c) and the Redis sink's vectors.
 *
 * Fields: le_put_u32 / u64 / f32 write v at p, le_get_* read it back. They go byte by byte, so a
 * big-endian host writes the same bytes; on little-endian ones the compiler turns them into plain
 * loads and stores. le_i32 / le_i64 turn a value read as unsigned back into a signed one (two's
 * complement) without relying on implementation-defined conversions.
 *
 * CRC: ccd_crc32 is CRC-32 (IEEE 802.3) over any length, from zlib's crc32 (which takes at most
 * UINT_MAX bytes a call). Check value: ccd_crc32("123456789", 9) == 0xCBF43926.
 *
 * Frame: the CCD_FRAME_BYTES in front of a checksummed payload (state.h, checkpoint.h):
 *   8 bytes magic, u32 format version, u32 CRC-32 of the payload, u64 payload length.
 * ccd_frame_seal fills them in for the payload that follows them in the same buffer.
 * ccd_frame_open checks magic, size, version, length and CRC, in that order, before a reader
 * looks at a single payload byte; its messages name the frame's kind ("checkpoint", "state"). */
#ifndef CCD_LE_H
#define CCD_LE_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

static inline unsigned char *le_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
    return p + 4;
}

static inline unsigned char *le_put_u64(unsigned char *p, uint64_t v)
{
    return le_put_u32(le_put_u32(p, (uint32_t)v), (uint32_t)(v >> 32));
}

static inline unsigned char *le_put_f32(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return le_put_u32(p, u);
}

static inline uint32_t le_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t le_get_u64(const unsigned char *p)
{
    return (uint64_t)le_get_u32(p) | (uint64_t)le_get_u32(p + 4) << 32;
}

static inline float le_get_f32(const unsigned char *p)
{
    uint32_t u = le_get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline int32_t le_i32(uint32_t u)
{
    return u <= INT32_MAX ? (int32_t)u : -(int32_t)(UINT32_MAX - u) - 1;
}

static inline int64_t le_i64(uint64_t u)
{
    return u <= INT64_MAX ? (int64_t)u : -(int64_t)(UINT64_MAX - u) - 1;
}

static inline uint32_t ccd_crc32(const unsigned char *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt part = n > 1u << 30 ? 1u << 30 : (uInt)n;
        c = crc32(c, p, part);
        p += part;
        n -= part;
    }
    return (uint32_t)c;
}

enum { CCD_FRAME_BYTES = 24 }; /* magic 8 + version 4 + crc 4 + payload length 8 */

/* buf holds CCD_FRAME_BYTES + payload_len bytes, the payload already in place. */
static inline void ccd_frame_seal(unsigned char *buf, const char magic[8], uint32_t version,
                                  size_t payload_len)
{
    memcpy(buf, magic, 8);
    unsigned char *p = le_put_u32(buf + 8, version);
    p = le_put_u32(p, ccd_crc32(buf + CCD_FRAME_BYTES, payload_len));
    le_put_u64(p, (uint64_t)payload_len);
}

/* Returns 0 with the payload's length (it starts at buf + CCD_FRAME_BYTES) and the format version
 * found (one of oldest..version: a reader may still read older layouts; got_version may be NULL),
 * or -1 with a reason in why. A short buffer that does not even start like the magic is "bad
 * magic", not "truncated": a file of another kind is named as such. */
static inline int ccd_frame_open(const unsigned char *buf, size_t len, const char magic[8],
                                 uint32_t oldest, uint32_t version, const char *kind,
                                 size_t *payload_len, uint32_t *got_version, char *why,
                                 size_t whylen)
{
    if (len >= 8 && memcmp(buf, magic, 8) != 0) {
        snprintf(why, whylen, "bad magic (not a ccd-stream %s)", kind);
        return -1;
    }
    if (len < CCD_FRAME_BYTES) {
        snprintf(why, whylen, "truncated header (%zu bytes)", len);
        return -1;
    }
    const uint32_t found = le_get_u32(buf + 8), crc = le_get_u32(buf + 12);
    const uint64_t payload = le_get_u64(buf + 16), present = len - CCD_FRAME_BYTES;
    if (found < oldest || found > version) {
        if (oldest == version)
            snprintf(why, whylen,
                     "format version %" PRIu32 " not supported (this build reads %" PRIu32 ")",
                     found, version);
        else
            snprintf(why, whylen,
                     "format version %" PRIu32 " not supported (this build reads %" PRIu32
                     " to %" PRIu32 ")",
                     found, oldest, version);
        return -1;
    }
    if (payload > present) {
        snprintf(why, whylen,
                 "truncated (header says %" PRIu64 " payload bytes, %" PRIu64 " present)", payload,
                 present);
        return -1;
    }
    if (payload < present) {
        snprintf(why, whylen, "%" PRIu64 " trailing bytes after the payload", present - payload);
        return -1;
    }
    if (ccd_crc32(buf + CCD_FRAME_BYTES, (size_t)payload) != crc) {
        snprintf(why, whylen, "checksum mismatch (corrupted)");
        return -1;
    }
    *payload_len = (size_t)payload;
    if (got_version)
        *got_version = found;
    return 0;
}

#endif
