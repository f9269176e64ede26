/* ccd_config: the [ccd*] sections of an INI config file -> the engine's ccd_config.
 *
 * Keys start from the reference's Yelp settings (ccd_config_yelp) and override them. Sections:
 *   [ccd]            seed, student_dim, teachers (list "type:dim:seed, ..."), switches
 *                    (replay, use_s, use_p, use_cl, update_teachers, collaborative, distill,
 *                    kd_train_items_first), kd_* and lwc_* values, exclusion_topk, init_topk,
 *                    replay_eps, student_replay_lambda, student_anneal, teacher_replay_lambda,
 *                    teacher_anneal, lwc_graph_degree, preset (full | finetune)
 *   [ccd.base] [ccd.kd] [ccd.student] [ccd.teacher]
 *                    lr, batch, negatives, weight_decay, lazy_decay, epochs, eval_every,
 *                    patience
 *   [ccd.student.block<k>]  ab, ss, ps, sw, pw   (replay schedule of block k >= 1)
 *   [ccd.teacher.block<k>]  ab, ss, ps, cs
 * Other sections are left to their own parsers (a handler for them may be chained). An unknown
 * key or a bad value is an error naming section.key and the value.
 *
 * worker/config/ is where configuration text becomes structs, and the only place in the tree that
 * reads INI: this file fills the engine's ccd_config (ccd-offline reads it alone), and
 * worker_config.h the whole ccd-worker file, handing its [ccd*] sections here so both read the
 * engine's keys identically. The engine (models/) never sees a config file. */
#ifndef CCD_WORKER_CONFIG_H
#define CCD_WORKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "ccd.h"

/* Apply one "section", "key" = "value". Returns 1 if taken, 0 if the section is not a ccd
 * section, -1 on a bad key or value (message in err). */
int ccd_config_set(ccd_config *c, const char *section, const char *key, const char *value,
                   char *err, size_t errlen);

/* Parse a whole file (only ccd sections allowed). Returns 0 or -1 with err = "FILE:LINE: ...". */
int ccd_config_load(ccd_config *c, const char *path, char *err, size_t errlen);

/* A whole decimal integer in [min, max] (no trailing characters); 0, or -1. */
int ccd_parse_int(const char *v, int min, int max, int *out);
/* "true/false", "1/0", "yes/no", "on/off" (any case). Returns 0 or -1. Both are shared with the
 * worker's own sections. */
int ccd_parse_bool(const char *v, bool *out);

/* ini_parse(path, handler, user), except that a line longer than libinih's line buffer
 * (INI_MAX_LINE, 200 bytes in Debian's build) is an error: inih would cut it, keep the truncated
 * value and parse the rest as a line of its own (a long secret's tail read as a key, and shown in
 * the error). Returns ini_parse's result (0, the first bad line, -1 when the file cannot be
 * opened); *too_long tells whether that line was bad for being too long. */
int ccd_ini_parse(const char *path,
                  int (*handler)(void *, const char *, const char *, const char *), void *user,
                  bool *too_long);

/* "-X section.key=value" overrides: the section is everything before the last dot. */
int ccd_config_override(ccd_config *c, const char *assignment, char *err, size_t errlen);

/* Every setting of c, in the config file's own terms: fn(ctx, section, key, value) once per key
 * that ccd_config_set takes ([ccd] first, then the stages, then the per-block rows c holds),
 * the value written so that setting it back gives the same bits. Stops at the first nonzero
 * return of fn; returns 0, or -1 when fn stopped it. Reports use it to say exactly what
 * produced them. */
typedef int (*ccd_config_visit)(void *ctx, const char *section, const char *key, const char *value);
int ccd_config_each(const ccd_config *c, ccd_config_visit fn, void *ctx);

/* c as an INI file that ccd_config_load reads back into the same settings. 0, or -1. */
int ccd_config_write_ini(FILE *f, const ccd_config *c);

#endif
