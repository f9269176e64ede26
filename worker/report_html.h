/* report_html: one self-contained HTML page with inline SVG charts, for people to look at.
 *
 * ccd-offline and ccd-eval fill a report_html and call report_html_write. The page has no
 * scripts and no external resources (fonts, styles and charts are inline), so it opens offline
 * in any browser and can be mailed or archived as one file. It shows:
 *   - a table of facts (config, seed, LA / RA / H-mean, totals: whatever the tool passes),
 *   - per-block quality on the newest block, r[k][k], for every series and the popularity
 *     baseline (line charts, R@20 and N@20),
 *   - the r[k][j] matrix of each series as a heatmap (forgetting reads down a column),
 *   - seconds per stage and block (stacked bars),
 *   - the same numbers as tables, so nothing is only in a picture.
 * Presentation only: the numbers come computed. */
#ifndef CCD_REPORT_HTML_H
#define CCD_REPORT_HTML_H

#include <stddef.h>

#define REPORT_MAX_SERIES 4
#define REPORT_MAX_STAGES 6
#define REPORT_MAX_FACTS 32

typedef struct {
    const char *name;  /* "continual student CL_k" */
    const char *color; /* CSS colour of its line */
    double **r20;      /* r20[k][j], j <= k, rows first..n_blocks-1 (NULL: absent) */
    double **n20;      /* same shape, N@20 (NULL: absent) */
} report_series;

typedef struct {
    const char *title;
    const char *fact_names[REPORT_MAX_FACTS]; /* shown as a two-column table, in order */
    const char *fact_values[REPORT_MAX_FACTS];
    int n_facts;
    int n_blocks; /* rows (and columns) 0..n_blocks-1 */
    int first;    /* first row present (rows before it were not run, e.g. a resume);
                     a NAN entry is a value not measured and is drawn as a gap */
    int n_series;
    report_series series[REPORT_MAX_SERIES];
    const double *base_r20; /* (n_blocks) popularity baseline on block k (NULL: none) */
    const double *base_n20;
    int n_stages;
    const char *stage_names[REPORT_MAX_STAGES];
    const double *stage_secs; /* (n_blocks x n_stages) row-major; NULL: no time chart */
} report_html;

/* Add one fact (both strings are borrowed: they must outlive report_html_write). Returns -1
 * when the table is full. */
int report_add_fact(report_html *r, const char *name, const char *value);

/* Write the page to path (a temporary file renamed into place). Returns 0, or -1 with err. */
int report_html_write(const report_html *r, const char *path, char *err, size_t errlen);

#endif
