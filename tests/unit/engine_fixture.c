/* The engine's small test stream and config, shared by the engine tests: see engine_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine_fixture.h"
#include "rng.h"

const int USERS[BLOCKS] = {70, 85, 100}, ITEMS[BLOCKS] = {60, 68, 75};

void make_blocks(ccd_block *blocks)
{
    ccd_rng r;
    ccd_rng_init(&r, 99, 0);
    for (int k = 0; k < BLOCKS; k++) {
        ccd_block *b = &blocks[k];
        memset(b, 0, sizeof *b);
        b->index = k;
        b->n_users = USERS[k];
        b->n_items = ITEMS[k];
        b->prev_users = k ? USERS[k - 1] : 0;
        b->prev_items = k ? ITEMS[k - 1] : 0;
        int cap = USERS[k] * 12;
        int *tu = malloc(cap * sizeof *tu), *ti = malloc(cap * sizeof *ti);
        int *vu = malloc(cap * sizeof *vu), *vi = malloc(cap * sizeof *vi);
        int *su = malloc(cap * sizeof *su), *si = malloc(cap * sizeof *si);
        int nt = 0, nv = 0, ns = 0;
        int u0 = k ? USERS[k - 1] / 3 : 0; /* some old users stay active */
        b->users = malloc(USERS[k] * sizeof *b->users);
        b->n_active_users = 0;
        for (int u = u0; u < USERS[k]; u++) {
            b->users[b->n_active_users++] = u;
            int cluster = u % 4;
            for (int e = 0; e < 8; e++) {
                /* items of the user's cluster, mostly */
                int i = (int)ccd_rng_below(&r, (uint32_t)ITEMS[k]);
                if (ccd_rng_uniform(&r) < 0.8f)
                    i = (i / 4) * 4 + cluster;
                if (i >= ITEMS[k])
                    i = cluster;
                if (e == 0)
                    vu[nv] = u, vi[nv++] = i;
                else if (e == 1)
                    su[ns] = u, si[ns++] = i;
                else
                    tu[nt] = u, ti[nt++] = i;
            }
        }
        assert_int_equal(ccd_csr_from_pairs(&b->train, USERS[k], ITEMS[k], tu, ti, nt), 0);
        assert_int_equal(ccd_csr_from_pairs(&b->valid, USERS[k], ITEMS[k], vu, vi, nv), 0);
        assert_int_equal(ccd_csr_from_pairs(&b->test, USERS[k], ITEMS[k], su, si, ns), 0);
        b->n_train_lines = nt;
        int *seen = calloc(ITEMS[k], sizeof *seen);
        for (int t = 0; t < nt; t++)
            seen[ti[t]] = 1;
        b->items = malloc(ITEMS[k] * sizeof *b->items);
        for (int i = 0; i < ITEMS[k]; i++)
            if (seen[i])
                b->items[b->n_active_items++] = i;
        free(seen), free(tu), free(ti), free(vu), free(vi), free(su), free(si);
    }
}

void free_blocks(ccd_block *blocks)
{
    for (int k = 0; k < BLOCKS; k++) {
        ccd_csr_free(&blocks[k].train);
        ccd_csr_free(&blocks[k].valid);
        ccd_csr_free(&blocks[k].test);
        free(blocks[k].users);
        free(blocks[k].items);
    }
}

void small_config(ccd_config *c)
{
    ccd_config_yelp(c);
    c->n_teachers = 2;
    c->teachers[0] = (ccd_teacher_spec){CCD_MODEL_LIGHTGCN, 8, 0};
    c->teachers[1] = (ccd_teacher_spec){CCD_MODEL_MF, 8, 1};
    c->student_dim = 4;
    c->base.epochs = 4;
    c->base.batch = 64;
    c->kd.epochs = c->student.epochs = c->teacher.epochs = 2;
    c->kd.batch = c->student.batch = c->teacher.batch = 64;
    c->kd_interesting = 5;
    c->kd_uninteresting_items = 30;
    c->kd_uninteresting_users = 40;
    c->exclusion_topk = 5;
    c->init_topk = 3;
    for (int k = 0; k < c->n_student_blocks; k++)
        c->student_blocks[k].ab = 10;
    for (int k = 0; k < c->n_teacher_blocks; k++)
        c->teacher_blocks[k].ab = 10;
}
