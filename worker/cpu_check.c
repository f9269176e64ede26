/* cpu_check: a binary built for a CPU level (CCD_ARCH=x86-64-v3: AVX2, FMA, ...) refuses to start,
 * with a message, on a CPU below that level, instead of dying of SIGILL somewhere in the engine
 * minutes later. Linked into every tool; runs before main as a constructor. The check itself is
 * compiled for plain x86-64 (the target attribute), so it cannot trip over the instructions it
 * checks for; the preprocessor macros still say what the rest of the build was compiled for. */
#include <stdio.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((constructor, target("arch=x86-64"))) static void cpu_check(void)
{
    __builtin_cpu_init();
    const char *missing = NULL;
#ifdef __AVX512F__
    if (!__builtin_cpu_supports("avx512f"))
        missing = "AVX-512F";
#endif
#ifdef __AVX2__
    if (!__builtin_cpu_supports("avx2"))
        missing = "AVX2";
#endif
#ifdef __FMA__
    if (!__builtin_cpu_supports("fma"))
        missing = "FMA";
#endif
#ifdef __SSE4_2__
    if (!__builtin_cpu_supports("sse4.2"))
        missing = "SSE4.2";
#endif
    if (missing) {
        fprintf(stderr,
                "this build of ccd-stream needs a CPU with %s, which this one lacks; build it "
                "for this CPU (cmake -DCCD_NATIVE=ON) or for an older level (-DCCD_NATIVE=OFF "
                "-DCCD_ARCH=x86-64-v2)\n",
                missing);
        _exit(70); /* EX_SOFTWARE: before main, nothing to clean up */
    }
}
#endif
