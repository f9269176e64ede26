/* omp_env: run the tools with OMP_WAIT_POLICY=passive unless the user chose a policy.
 *
 * libgomp's default lets idle threads spin after every parallel loop. On a 2-core machine that
 * shares its cores (OpenBLAS's own threads, Kafka client threads, anything else running), the
 * spinning thread steals the core the other one needs, and short parallel loops slow down by
 * 10-100x; measured here, passive waiting is as fast or faster even on idle cores. libgomp reads
 * the variable once, when it is loaded, so the tool sets it and re-executes itself. */
#ifndef CCD_OMP_ENV_H
#define CCD_OMP_ENV_H

#include <stdlib.h>
#include <unistd.h>

static inline void ccd_omp_env(char **argv)
{
    if (getenv("OMP_WAIT_POLICY"))
        return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default policy */
}

#endif
