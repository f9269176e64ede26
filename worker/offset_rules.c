/* offset_rules: the rules and the policy names; see offset_rules.h. Pure functions: the consumer
 * thread (service.c) feeds them what it read from Kafka and the checkpoint. */
#include "offset_rules.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const policy_names[] = {"fail", "skip", "retrain"};

int offset_reset_policy_parse(const char *s, offset_reset_policy *out)
{
    for (int p = 0; p < 3; p++)
        if (!strcmp(s, policy_names[p])) {
            *out = (offset_reset_policy)p;
            return 0;
        }
    return -1;
}

const char *offset_reset_policy_name(offset_reset_policy p)
{
    return p >= OFFSETS_FAIL && p <= OFFSETS_RETRAIN ? policy_names[p] : "?";
}

const char *offsets_moved_name(offsets_moved m)
{
    switch (m) {
    case OFFSETS_RESET:
        return "reset";
    case OFFSETS_TRUNCATED:
        return "truncated";
    case OFFSETS_REWOUND:
        return "rewound";
    default:
        return "ok";
    }
}

offsets_moved offsets_check_start(int64_t durable_next, int64_t commit_floor, int64_t first_offset,
                                  int64_t high_watermark)
{
    if (commit_floor >= 0 && first_offset >= 0 && first_offset < commit_floor)
        return OFFSETS_RESET;
    if (high_watermark >= 0 && high_watermark < durable_next)
        return OFFSETS_TRUNCATED;
    return OFFSETS_OK;
}

offsets_moved offsets_check_next(int64_t position, int64_t offset)
{
    return position >= 0 && offset < position ? OFFSETS_REWOUND : OFFSETS_OK;
}

void offsets_describe(offsets_moved m, int64_t durable_next, int64_t commit_floor,
                      int64_t first_offset, int64_t high_watermark, int64_t position,
                      int64_t offset, char *out, size_t outlen)
{
    switch (m) {
    case OFFSETS_RESET:
        snprintf(
            out, outlen,
            "the first offset read since the assignment, %" PRId64
            ", is below the group's committed offset %" PRId64
            " when the checkpointed block was taken (offsets reset backwards, expired or "
            "deleted, or the topic recreated); the checkpoint holds every message below %" PRId64,
            first_offset, commit_floor, durable_next);
        break;
    case OFFSETS_TRUNCATED:
        snprintf(out, outlen,
                 "the partition ends at %" PRId64 ", below the %" PRId64
                 " messages the checkpoint already holds (topic recreated or truncated)",
                 high_watermark, durable_next);
        break;
    case OFFSETS_REWOUND:
        snprintf(out, outlen,
                 "offset %" PRId64 " came after offset %" PRId64
                 " with no seek (auto.offset.reset moved the consumer: the topic was truncated or "
                 "recreated while it was read)",
                 offset, position - 1);
        break;
    default:
        snprintf(out, outlen, "offsets as expected");
    }
}
