/* report_html: see report_html.h. SVG is written by hand: three chart kinds (lines, heatmap,
 * stacked bars) on one small set of helpers (axis with "nice" ticks, escaped text). Charts have a
 * fixed pixel size and a viewBox, so they scale with the page. */
#include "report_html.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const PALETTE[] = {"#1f77b4", "#ff7f0e", "#2ca02c",
                                      "#d62728", "#9467bd", "#8c564b"};

int report_add_fact(report_html *r, const char *name, const char *value)
{
    if (r->n_facts >= REPORT_MAX_FACTS)
        return -1;
    r->fact_names[r->n_facts] = name;
    r->fact_values[r->n_facts] = value;
    r->n_facts++;
    return 0;
}

static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* A tick step of 1, 2 or 5 x 10^e giving about `want` intervals up to vmax. */
static double nice_step(double vmax, int want)
{
    if (!(vmax > 0))
        return 1;
    double raw = vmax / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* Plot area of every x-y chart. */
enum { W = 640, H = 300, ML = 64, MR = 190, MT = 34, MB = 44 };

typedef struct {
    double ymax, step;
    int n_x;
} frame;

static double fx(const frame *fr, int i)
{
    double pw = W - ML - MR;
    return fr->n_x > 1 ? ML + pw * i / (fr->n_x - 1) : ML + pw / 2;
}

static double fy(const frame *fr, double v)
{
    return MT + (H - MT - MB) * (1 - v / fr->ymax);
}

static void axes(FILE *f, const frame *fr, const char *title, const char *ylabel,
                 const char *xlabel, const char *const *xticks, int bars)
{
    fprintf(f,
            "<svg class=\"chart\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\">\n",
            W, H, W, H);
    fprintf(f, "<text x=\"%d\" y=\"20\" class=\"t\">", ML);
    esc(f, title);
    fprintf(f, "</text>\n");
    for (double v = 0; v <= fr->ymax * 1.0001; v += fr->step) {
        double y = fy(fr, v);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>", ML, W - MR,
                y, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"yt\">%g</text>\n", ML - 6, y + 4, v);
    }
    for (int i = 0; i < fr->n_x; i++) {
        double x = bars ? ML + (W - ML - MR) * (i + 0.5) / fr->n_x : fx(fr, i);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"xt\">", x, H - MB + 16);
        esc(f, xticks[i]);
        fprintf(f, "</text>");
    }
    fprintf(f, "\n<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" class=\"ax\"/>", ML, W - MR, H - MB,
            H - MB);
    fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" class=\"ax\"/>\n", ML, ML, MT,
            H - MB);
    fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"xl\">", ML + (W - ML - MR) / 2, H - 8);
    esc(f, xlabel);
    fprintf(f, "</text><text transform=\"translate(16 %d) rotate(-90)\" class=\"xl\">",
            MT + (H - MT - MB) / 2);
    esc(f, ylabel);
    fprintf(f, "</text>\n");
}

static void legend(FILE *f, int i, const char *name, const char *color, int dashed, int box)
{
    int x = W - MR + 14, y = MT + 6 + 20 * i;
    if (box)
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" fill=\"%s\"/>", x, y - 8,
                color);
    else
        fprintf(
            f,
            "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2.5\"%s/>",
            x, x + 18, y - 3, y - 3, color, dashed ? " stroke-dasharray=\"5 3\"" : "");
    fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"lg\">", x + 24, y + 1);
    esc(f, name);
    fprintf(f, "</text>\n");
}

typedef struct {
    const char *name, *color;
    int dashed;
    double y[64]; /* NAN: no point */
} line;

static void line_chart(FILE *f, const char *title, const char *ylabel, const char *xlabel,
                       const char *const *xticks, int n_x, const line *lines, int n_lines)
{
    double vmax = 0;
    for (int l = 0; l < n_lines; l++)
        for (int i = 0; i < n_x; i++)
            if (!isnan(lines[l].y[i]) && lines[l].y[i] > vmax)
                vmax = lines[l].y[i];
    frame fr = {.n_x = n_x};
    fr.step = nice_step(vmax * 1.05, 5);
    fr.ymax = fr.step * ceil(vmax * 1.05 / fr.step);
    if (!(fr.ymax > 0))
        fr.ymax = fr.step = 1;
    axes(f, &fr, title, ylabel, xlabel, xticks, 0);
    for (int l = 0; l < n_lines; l++) {
        const line *ln = &lines[l];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\"%s points=\"",
                ln->color, ln->dashed ? " stroke-dasharray=\"5 3\"" : "");
        for (int i = 0; i < n_x; i++)
            if (!isnan(ln->y[i]))
                fprintf(f, "%.1f,%.1f ", fx(&fr, i), fy(&fr, ln->y[i]));
        fprintf(f, "\"/>\n");
        for (int i = 0; i < n_x; i++)
            if (!isnan(ln->y[i])) {
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>",
                        fx(&fr, i), fy(&fr, ln->y[i]), ln->color);
                esc(f, ln->name);
                fprintf(f, ", %s: %.4f</title></circle>", xticks[i], ln->y[i]);
            }
        legend(f, l, ln->name, ln->color, ln->dashed, 0);
    }
    fprintf(f, "</svg>\n");
}

/* r[k][j] for rows first..n-1 as a lower-triangular heatmap, white (0) to dark blue (max). */
static void heatmap(FILE *f, const report_html *r, const char *title, double **m)
{
    const int cw = 64, ch = 30, ml = 96, mt = 66;
    const int n = r->n_blocks, w = ml + cw * n + 20, h = mt + ch * (n - r->first) + 20;
    double vmax = 0;
    for (int k = r->first; k < n; k++)
        for (int j = 0; j <= k; j++)
            if (!isnan(m[k][j]) && m[k][j] > vmax)
                vmax = m[k][j];
    fprintf(
        f,
        "<svg class=\"chart hm\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\">\n",
        w, h, w, h);
    fprintf(f, "<text x=\"%d\" y=\"20\" class=\"t\">", 8);
    esc(f, title);
    fprintf(f, "</text>\n<text x=\"%d\" y=\"%d\" class=\"lg\">test block j</text>\n", ml, mt - 22);
    for (int j = 0; j < n; j++)
        fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"xt\">%d</text>", ml + cw * j + cw / 2, mt - 6,
                j);
    for (int k = r->first; k < n; k++) {
        int y = mt + ch * (k - r->first);
        fprintf(f, "\n<text x=\"%d\" y=\"%d\" class=\"yt\">after block %d</text>", ml - 6,
                y + ch / 2 + 4, k);
        for (int j = 0; j <= k && j < n; j++) {
            if (isnan(m[k][j]))
                continue;
            double t = vmax > 0 ? m[k][j] / vmax : 0;
            int R = (int)(247 - t * (247 - 8)), G = (int)(251 - t * (251 - 81)),
                B = (int)(255 - t * (255 - 156));
            fprintf(f,
                    "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,%d)\" "
                    "stroke=\"#fff\"/>",
                    ml + cw * j, y, cw, ch, R, G, B);
            fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"cell\" fill=\"%s\">%.4f</text>",
                    ml + cw * j + cw / 2, y + ch / 2 + 4, t > 0.55 ? "#fff" : "#222", m[k][j]);
        }
    }
    fprintf(f, "\n</svg>\n");
}

static void stage_chart(FILE *f, const report_html *r, const char *const *xticks, int n_x)
{
    double vmax = 0;
    for (int k = r->first; k < r->n_blocks; k++) {
        double s = 0;
        for (int q = 0; q < r->n_stages; q++)
            if (r->stage_secs[k * r->n_stages + q] > 0)
                s += r->stage_secs[k * r->n_stages + q];
        if (s > vmax)
            vmax = s;
    }
    frame fr = {.n_x = n_x};
    fr.step = nice_step(vmax * 1.05, 5);
    fr.ymax = fr.step * ceil(vmax * 1.05 / fr.step);
    if (!(fr.ymax > 0))
        fr.ymax = fr.step = 1;
    axes(f, &fr, "Seconds per block, by stage", "seconds", "block", xticks, 1);
    double slot = (double)(W - ML - MR) / n_x, bw = slot * 0.6;
    for (int i = 0; i < n_x; i++) {
        int k = r->first + i;
        double acc = 0;
        for (int q = 0; q < r->n_stages; q++) {
            double v = r->stage_secs[k * r->n_stages + q];
            if (!(v > 0))
                continue;
            double y0 = fy(&fr, acc), y1 = fy(&fr, acc + v);
            fprintf(
                f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>",
                ML + slot * i + (slot - bw) / 2, y1, bw, y0 - y1, PALETTE[q % 6]);
            esc(f, r->stage_names[q]);
            fprintf(f, ": %.1f s</title></rect>", v);
            acc += v;
        }
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"xt\">%.0f s</text>\n",
                ML + slot * (i + 0.5), fy(&fr, acc) - 4, acc);
    }
    for (int q = 0; q < r->n_stages; q++)
        legend(f, q, r->stage_names[q], PALETTE[q % 6], 0, 1);
    fprintf(f, "</svg>\n");
}

static void num_cell(FILE *f, const char *fmt, double v)
{
    if (isnan(v))
        fprintf(f, "<td></td>");
    else
        fprintf(f, fmt, v);
}

static void matrix_table(FILE *f, const report_html *r, const char *caption, double **m)
{
    fprintf(f, "<table class=\"num\"><caption>");
    esc(f, caption);
    fprintf(f, "</caption><tr><th></th>");
    for (int j = 0; j < r->n_blocks; j++)
        fprintf(f, "<th>block %d</th>", j);
    fprintf(f, "</tr>\n");
    for (int k = r->first; k < r->n_blocks; k++) {
        fprintf(f, "<tr><th>after block %d</th>", k);
        for (int j = 0; j < r->n_blocks; j++)
            if (j <= k && !isnan(m[k][j]))
                fprintf(f, "<td>%.4f</td>", m[k][j]);
            else
                fprintf(f, "<td></td>");
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n");
}

static const char STYLE[] =
    "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px auto;max-width:1000px;color:#222;"
    "background:#fff}h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid "
    "#ddd}"
    "table{border-collapse:collapse;margin:10px 0}td,th{padding:3px 10px;border:1px solid "
    "#ddd;font-size:13px}"
    "th{background:#f3f5f8;text-align:left}table.num "
    "td{text-align:right;font-variant-numeric:tabular-nums}"
    "caption{text-align:left;font-weight:bold;padding:4px 0}.chart{display:block;margin:8px "
    "0;max-width:100%;height:auto}"
    ".hm{display:inline-block;margin-right:24px;vertical-align:top}"
    ".t{font-size:14px;font-weight:bold}.yt{font-size:11px;text-anchor:end}.xt{font-size:11px;text-"
    "anchor:middle}"
    ".xl{font-size:12px;text-anchor:middle}.lg{font-size:12px}.cell{font-size:11px;text-anchor:"
    "middle}"
    ".grid{stroke:#e5e5e5}.ax{stroke:#555}p.note{font-size:13px;color:#555}";

/* The title and the table of facts. */
static void write_head(FILE *f, const report_html *r)
{
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    esc(f, r->title);
    fprintf(f, "</title><style>%s</style></head><body>\n<h1>", STYLE);
    esc(f, r->title);
    fprintf(f, "</h1>\n<table id=\"facts\">\n");
    for (int i = 0; i < r->n_facts; i++) {
        fprintf(f, "<tr><th>");
        esc(f, r->fact_names[i]);
        fprintf(f, "</th><td>");
        esc(f, r->fact_values[i]);
        fprintf(f, "</td></tr>\n");
    }
    fprintf(f, "</table>\n");
}

/* r[k][k] of every series, and the baseline, over the n_x blocks from r->first: R@20 (metric 0)
 * or N@20 (1), one line chart. */
static void quality_chart(FILE *f, const report_html *r, int metric, const char *const *xticks,
                          int n_x)
{
    line lines[REPORT_MAX_SERIES + 1];
    int nl = 0;
    for (int s = 0; s < r->n_series; s++) {
        double **m = metric ? r->series[s].n20 : r->series[s].r20;
        if (!m)
            continue;
        line *ln = &lines[nl++];
        ln->name = r->series[s].name;
        ln->color = r->series[s].color;
        ln->dashed = 0;
        for (int i = 0; i < n_x; i++) {
            int k = r->first + i;
            ln->y[i] = m[k][k];
        }
    }
    const double *base = metric ? r->base_n20 : r->base_r20;
    if (base) {
        line *ln = &lines[nl++];
        ln->name = "popularity baseline";
        ln->color = "#7f7f7f";
        ln->dashed = 1;
        for (int i = 0; i < n_x; i++)
            ln->y[i] = base[r->first + i];
    }
    if (nl == 0)
        return;
    if (metric == 0)
        fprintf(
            f,
            "<h2>Quality on the newest block</h2>\n<p class=\"note\">Test metric of block k after "
            "block k: how well each model serves the interactions it has just learnt from.</p>\n");
    line_chart(f, metric ? "N@20 on block k, after block k" : "R@20 on block k, after block k",
               metric ? "test N@20" : "test R@20", "block", xticks, n_x, lines, nl);
}

/* The popularity baseline per block, as a table. */
static void baseline_table(FILE *f, const report_html *r)
{
    fprintf(f,
            "<table class=\"num\"><caption>popularity baseline on block k</caption><tr><th></th>");
    for (int k = r->first; k < r->n_blocks; k++)
        fprintf(f, "<th>%d</th>", k);
    fprintf(f, "</tr>\n<tr><th>R@20</th>");
    for (int k = r->first; k < r->n_blocks; k++)
        num_cell(f, "<td>%.4f</td>", r->base_r20[k]);
    if (r->base_n20) {
        fprintf(f, "</tr>\n<tr><th>N@20</th>");
        for (int k = r->first; k < r->n_blocks; k++)
            num_cell(f, "<td>%.4f</td>", r->base_n20[k]);
    }
    fprintf(f, "</tr></table>\n");
}

/* Seconds per stage and block, as a table. */
static void seconds_table(FILE *f, const report_html *r)
{
    fprintf(f, "<table class=\"num\"><caption>seconds</caption><tr><th></th>");
    for (int q = 0; q < r->n_stages; q++) {
        fprintf(f, "<th>");
        esc(f, r->stage_names[q]);
        fprintf(f, "</th>");
    }
    fprintf(f, "</tr>\n");
    for (int k = r->first; k < r->n_blocks; k++) {
        fprintf(f, "<tr><th>block %d</th>", k);
        for (int q = 0; q < r->n_stages; q++)
            num_cell(f, "<td>%.1f</td>", r->stage_secs[k * r->n_stages + q]);
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n");
}

/* "The numbers": every chart's values as tables, so nothing is only in a picture. */
static void number_tables(FILE *f, const report_html *r)
{
    fprintf(f, "<h2>The numbers</h2>\n");
    for (int s = 0; s < r->n_series; s++) {
        char cap[256];
        if (r->series[s].r20) {
            snprintf(cap, sizeof cap, "%s, test R@20", r->series[s].name);
            matrix_table(f, r, cap, r->series[s].r20);
        }
        if (r->series[s].n20) {
            snprintf(cap, sizeof cap, "%s, test N@20", r->series[s].name);
            matrix_table(f, r, cap, r->series[s].n20);
        }
    }
    if (r->base_r20)
        baseline_table(f, r);
    if (r->stage_secs && r->n_stages > 0)
        seconds_table(f, r);
}

static void write_page(FILE *f, const report_html *r)
{
    const int n_x = r->n_blocks - r->first; /* report_html_write: at most 64 */
    char tick_buf[64][24];
    const char *xticks[64];
    for (int i = 0; i < n_x; i++) {
        snprintf(tick_buf[i], sizeof tick_buf[i], "%d", r->first + i);
        xticks[i] = tick_buf[i];
    }
    write_head(f, r);
    for (int metric = 0; metric < 2; metric++)
        quality_chart(f, r, metric, xticks, n_x);
    fprintf(
        f,
        "<h2>Every block after every block: r[k][j]</h2>\n<p class=\"note\">Row k: the model after "
        "block k, tested on each earlier block j. Reading down a column shows forgetting.</p>\n");
    for (int s = 0; s < r->n_series; s++) {
        if (!r->series[s].r20)
            continue;
        char title[256];
        snprintf(title, sizeof title, "%s: test R@20", r->series[s].name);
        heatmap(f, r, title, r->series[s].r20);
    }
    if (r->stage_secs && r->n_stages > 0) {
        fprintf(f, "<h2>Time</h2>\n");
        stage_chart(f, r, xticks, n_x);
    }
    number_tables(f, r);
    fprintf(f, "</body></html>\n");
}

int report_html_write(const report_html *r, const char *path, char *err, size_t errlen)
{
    if (r->n_blocks < 1 || r->n_blocks > 64 || r->first < 0 || r->first >= r->n_blocks ||
        r->n_series > REPORT_MAX_SERIES || r->n_stages > REPORT_MAX_STAGES) {
        snprintf(err, errlen, "report: nothing to show (%d rows from %d)", r->n_blocks, r->first);
        return -1;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%.4000s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "%.900s: %s", tmp, strerror(errno));
        return -1;
    }
    write_page(f, r);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%.900s: %s", path, strerror(errno ? errno : EIO));
        remove(tmp);
        return -1;
    }
    return 0;
}
