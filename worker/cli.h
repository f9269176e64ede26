/* cli: strict numbers for the command-line tools and the config parsers, which read no number
 * with atoi, atof or a bare strto* but through here (one exception: a teacher's unsigned 64-bit
 * seed in ccd_config's teacher list).
 *
 * A number option takes the whole argument as a base-10 integer in a stated range; a typo, a
 * trailing unit or an out-of-range value is an error naming the option, never a silent zero as
 * atoi would give. The silent form (cli_parse_int64) serves the config parsers, which name the
 * key themselves. */
#ifndef CCD_CLI_H
#define CCD_CLI_H

#include <stdint.h>

/* The whole of s as an integer in [min, max]: 0, or -1 (out untouched). */
int cli_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
/* The same for option --name of tool, printing "tool: --name: expected an integer in
 * [min, max], got "s"" to stderr on failure. */
int cli_int64(const char *tool, const char *name, const char *s, int64_t min, int64_t max,
              int64_t *out);
int cli_int(const char *tool, const char *name, const char *s, int min, int max, int *out);

/* The whole of s as a number in [min, max] (strtof / strtod: decimal or hex, "inf" as C reads
 * it; an overflow, or a result too small to represent, is an error): 0, or -1 (out untouched).
 * The tools print their own message, which states the range they need. */
int cli_parse_float(const char *s, float min, float max, float *out);
int cli_parse_double(const char *s, double min, double max, double *out);

#endif
