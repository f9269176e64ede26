/* service: the ccd-worker service as a library: Avro interaction events from Kafka -> windows ->
 * one CCD block per window -> student embeddings in Redis, with checkpoints and commits of only
 * what is durable (service.c tells how). The command line around it is worker/cmd/ccd_worker.c.
 *
 * One service per process: service_stop is process-wide (it is what a SIGTERM handler calls). */
#ifndef CCD_SERVICE_H
#define CCD_SERVICE_H

#include <stdint.h>

#include "worker_config.h"

typedef struct {
    int64_t exit_idle_ms; /* > 0: exit once no message came for this long and nothing is pending */
    int embedded_partitions; /* > 0: host librdkafka's mock cluster with the input topics created
                              * with this many partitions (demos; nothing is persisted) */
} service_opts;

/* Run the service on cfg (already through worker_config_check; the service takes it over and
 * frees it, leaving *cfg zeroed) until service_stop, a fatal error or --exit-when-idle. The
 * caller ignores SIGPIPE first (redis_sink.h). Returns the process's exit status: 0 a clean stop,
 * 1 a fatal error while running (logged), 2 a failed start (the message on stderr). */
int service_run(worker_config *cfg, const service_opts *o);

/* Ask the running service to stop: it abandons running blocks, commits what is durable and
 * leaves the group. Async-signal-safe. */
void service_stop(void);

#endif
