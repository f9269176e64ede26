/* testhook: see testhook.h. The variable is read once (pthread_once: the consumer and the trainer
 * thread both call in); `fired` makes the pause happen at most once per process. */
#include "testhook.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wlog.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char want_phase[32], want_model[128];
static int want_block = -1;
static atomic_bool armed, fired;

static void read_env(void)
{
    const char *v = getenv("CCD_TEST_PAUSE");
    if (!v || !*v)
        return;
    const char *a = strchr(v, ':'), *b = a ? strchr(a + 1, ':') : NULL;
    if (!a || !b || a - v >= (long)sizeof want_phase || b - a - 1 >= (long)sizeof want_model) {
        wlog(WLOG_WARN, "CCD_TEST_PAUSE=%s ignored (want <phase>:<model>:<block>)", v);
        return;
    }
    snprintf(want_phase, sizeof want_phase, "%.*s", (int)(a - v), v);
    snprintf(want_model, sizeof want_model, "%.*s", (int)(b - a - 1), a + 1);
    want_block = atoi(b + 1);
    atomic_store(&armed, true);
}

/* Whether this call is the one CCD_TEST_PAUSE names (true at most once per process). */
static bool fires(const char *phase, const char *model, int block)
{
    pthread_once(&once, read_env);
    return atomic_load(&armed) && block == want_block && strcmp(phase, want_phase) == 0 &&
           strcmp(model, want_model) == 0 && !atomic_exchange(&fired, true);
}

void test_hang(const char *phase, const char *model, int block)
{
    if (!fires(phase, model, block))
        return;
    wlog(WLOG_WARN, "test hang: %s model %s block %d pid %ld", phase, model, block, (long)getpid());
    for (;;)
        pause(); /* signals still reach the process's handlers; this thread never returns */
}

void test_pause(const char *phase, const char *model, int block)
{
    if (!fires(phase, model, block))
        return;
    wlog(WLOG_WARN, "test pause: %s model %s block %d pid %ld", phase, model, block,
         (long)getpid());
    raise(SIGSTOP);
    wlog(WLOG_WARN, "test pause: %s model %s block %d resumed", phase, model, block);
}
