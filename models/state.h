/* state: the engine state as bytes, for the worker's checkpoints.
 *
 * Format (all integers and floats little-endian):
 *   "CCDSTATE"  8 bytes magic
 *   u32         format version (1)
 *   u32         CRC-32 (IEEE) of the payload
 *   u64         payload length in bytes
 *   payload     sizes and teacher specs, then the tables (teachers, D_k, CL_k, proxies),
 *               then block k's train pairs (CSR) and active users and items
 * Loading checks the magic, the version, the length and the checksum before it reads anything,
 * then every size against what the payload holds, so a truncated or corrupted file is refused
 * with a message and never half-loaded. Where the bytes go (a file written atomically, Redis) is
 * the worker's business. */
#ifndef CCD_STATE_H
#define CCD_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "ccd.h"

#define CCD_STATE_VERSION 1

/* Serialise st into a malloc'd buffer (*buf, *len). Returns 0 or -1 (out of memory). */
int ccd_state_serialize(const ccd_state *st, unsigned char **buf, size_t *len);

/* Rebuild a state from bytes. st is initialised here; on failure it is left empty and err says
 * why. Returns 0 or -1. */
int ccd_state_deserialize(ccd_state *st, const unsigned char *buf, size_t len, char *err,
                          size_t errlen);

/* CRC-32 (IEEE 802.3): zlib's crc32 over any length. */
uint32_t ccd_crc32(const unsigned char *p, size_t n);

#endif
