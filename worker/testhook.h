/* testhook: a way for tests to freeze the worker at a named point (tests/stall.sh).
 *
 * CCD_TEST_PAUSE=<phase>:<model>:<block> makes the first call of test_pause with that phase,
 * model and block log "test pause: <phase> model M block K pid P" and raise(SIGSTOP), which stops
 * the whole process (every thread) until a SIGCONT: the stall of a frozen VM or a long pause,
 * placed exactly. It fires once per process. Unset, a call costs one load and one compare.
 *
 * Phases (where the calls are): train (trainer.c, after the block's log line), publish_start
 * (redis_sink.c, after INCR seq, before the orphan deletion), publish_switch (the version's meta
 * written, before the commit that lists it and moves `current`), after_publish (the student is
 * live, the slow path not started), before_ckpt (before the checkpoint write), ckpt_commit (the
 * checkpoint's bytes are written, its fenced commit not started: checkpoint_dir.c before the
 * compare-before-rename, checkpoint_redis.c between the chunks and the commit script).
 *
 * test_hang matches the same variable but blocks only the calling thread, forever: a hung
 * thread while the rest of the process (the metrics server's thread) goes on, which is what
 * /healthz must notice. Phase consumer_hang (service.c, the consumer thread, when the window of
 * that block closes). */
#ifndef CCD_TESTHOOK_H
#define CCD_TESTHOOK_H

void test_pause(const char *phase, const char *model, int block);
void test_hang(const char *phase, const char *model, int block);

#endif
