/* offset_rules: noticing that a partition's offsets went backwards under a model (the topic was
 * recreated or truncated, or the group's offsets were reset), and the configured answer.
 *
 * A model's checkpoint remembers, per partition, `durable_next` (every message of the model below
 * it is folded into the state) and `commit_floor` (the group's committed offset when that block
 * was taken). The worker skips the model's messages below durable_next as duplicates. That is
 * right after a crash or a rebalance, when the partition is read again from an older committed
 * offset, and wrong when the offsets themselves moved: a recreated topic would be skipped until it
 * passes the old offsets, and a group reset meant to retrain would retrain nothing.
 *
 * Offsets within a partition only grow, and a group's commits only move forward (the broker
 * refuses a stale member's commits, and a worker commits nothing below what it committed), so a
 * successor starts at or above commit_floor and finds the high watermark at or above
 * durable_next. Anything else means the offsets moved; three rules, each naming what it saw:
 *   reset      the first offset read from the partition since it was assigned is below the
 *              model's commit_floor: the group's offsets were reset backwards, expired or deleted
 *              (deleting a topic deletes its committed offsets), or the topic was recreated;
 *   truncated  the partition's high watermark is below the model's durable_next: the topic was
 *              recreated or truncated and holds fewer messages than the model already folded;
 *   rewound    while reading, a message came at an offset below the one before it with no seek of
 *              ours (auto.offset.reset moved the consumer after an out-of-range fetch).
 * Not detected: a topic recreated and refilled past both marks while the group's offsets survived
 * (librdkafka 2.0.2 has no topic id to tell two topics of one name apart), and a checkpoint of
 * format 1, which has no commit_floor (the `reset` rule is off for it until its next block).
 *
 * The policy (input.on_offset_reset):
 *   fail     (default) the worker stops with an error naming the model, topic, partition, the
 *            offsets and the rule, and commits nothing more for the partition, so an operator
 *            can decide with the group's offsets untouched;
 *   skip     the model's messages below durable_next are skipped as before (one warning);
 *   retrain  the model folds the partition again from the message that tripped the rule, as new
 *            blocks on its current state: block numbers keep growing, so `current` never moves
 *            back. */
#ifndef CCD_OFFSET_RULES_H
#define CCD_OFFSET_RULES_H

#include <stddef.h>
#include <stdint.h>

typedef enum { OFFSETS_FAIL, OFFSETS_SKIP, OFFSETS_RETRAIN } offset_reset_policy;

typedef enum { OFFSETS_OK, OFFSETS_RESET, OFFSETS_TRUNCATED, OFFSETS_REWOUND } offsets_moved;

/* "fail" | "skip" | "retrain": 0, or -1 when s is none of them. */
int offset_reset_policy_parse(const char *s, offset_reset_policy *out);
const char *offset_reset_policy_name(offset_reset_policy p);
/* "reset", "truncated", "rewound" ("ok" for OFFSETS_OK) */
const char *offsets_moved_name(offsets_moved m);

/* At a model's first message on a partition it has a checkpoint for: durable_next and
 * commit_floor from the checkpoint (commit_floor -1: unknown), first_offset the partition's first
 * offset read since it was assigned, high_watermark the partition's (-1: unknown). */
offsets_moved offsets_check_start(int64_t durable_next, int64_t commit_floor, int64_t first_offset,
                                  int64_t high_watermark);

/* At every message: position is the offset after the previous message read from the partition
 * since it was assigned (-1: none yet). */
offsets_moved offsets_check_next(int64_t position, int64_t offset);

/* One line for the log naming what moved and the numbers behind it, e.g. "the first offset read
 * since the assignment, 0, is below the group's committed offset 1200 when block 3 was taken
 * (offsets reset backwards, expired, or the topic recreated)". */
void offsets_describe(offsets_moved m, int64_t durable_next, int64_t commit_floor,
                      int64_t first_offset, int64_t high_watermark, int64_t position,
                      int64_t offset, char *out, size_t outlen);

#endif
