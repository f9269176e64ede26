/* json_file: see json_file.h. */
#include "json_file.h"

int json_file_write(const json_t *j, FILE *f)
{
    int bad = !j || json_dumpf(j, f, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) != 0;
    bad |= fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}
