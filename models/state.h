/* state: the engine state as bytes, for the worker's checkpoints.
 *
 * Format (all integers and floats little-endian; the frame and the codec are le.h's):
 *   "CCDSTATE"  8 bytes magic
 *   u32         format version (1)
 *   u32         CRC-32 (IEEE) of the payload
 *   u64         payload length in bytes
 *   payload     i32 block, n_users, n_items, n_teachers, student_dim, proxy_users, proxy_items;
 *               per teacher u32 type, u32 dim, u64 seed;
 *               tables, each u32 present (0/1) then its floats: every teacher's
 *               (n_users + n_items) x dim, D_k and CL_k (n_users + n_items) x student_dim, the
 *               two proxies (proxy_users + proxy_items) x student_dim;
 *               block k's train pairs: u32 rows, u32 cols, u64 nnz, (rows + 1) u64 row
 *               pointers, nnz i32 items; u32 n + n i32 active users, the same for items;
 *               u32 top_k (0: none) + n_users x top_k i32 of E_k's top lists;
 *               version 2 only: the scoring history (history_blocks != 1), a CSR like the train
 *               pairs followed by nnz i32 blocks (the block each pair comes from)
 * A state without a history is written as version 1, byte for byte what earlier builds wrote and
 * read; both versions are read.
 * Loading checks the magic, the version, the length and the checksum before it reads anything,
 * then every size against what the payload holds, so a truncated or corrupted file is refused
 * with a message and never half-loaded. Where the bytes go (a file written atomically, Redis) is
 * the worker's business. */
#ifndef CCD_STATE_H
#define CCD_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "ccd.h"

#define CCD_STATE_VERSION 2

/* Serialise st into a malloc'd buffer (*buf, *len). Returns 0 or -1 (out of memory). */
int ccd_state_serialize(const ccd_state *st, unsigned char **buf, size_t *len);

/* Rebuild a state from bytes. st is initialised here; on failure it is left empty and err says
 * why. Returns 0 or -1. */
int ccd_state_deserialize(ccd_state *st, const unsigned char *buf, size_t len, char *err,
                          size_t errlen);

#endif
