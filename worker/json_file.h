/* json_file: the tools' JSON reports (ccd-train, ccd-offline, ccd-eval) are jansson objects built
 * in memory and written once at the end by this one function, so every report has the same
 * layout (2-space indent, reals with 9 significant digits) and every string in it is escaped by
 * the library, whatever a path or an id holds. */
#ifndef CCD_JSON_FILE_H
#define CCD_JSON_FILE_H

#include <jansson.h>
#include <stdio.h>

/* Write j to f followed by a newline, and close f (always). 0, or -1 when anything failed. */
int json_file_write(const json_t *j, FILE *f);

#endif
