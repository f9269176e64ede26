/* cli: strict numbers for the command-line tools and the config parsers.
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

#endif
