/* defaults: the engine's settings (ccd_config_yelp, the ablation presets) and the rules that
 * size a block's work from its data (ccd_rule_unint_*, ccd_batch_growth). See ccd.h. */
#include <string.h>

#include "ccd.h"

/* A stage evaluated after every epoch, with the reference's weight decay. Built on a zeroed
 * struct so that its padding is zero too: configs are compared byte for byte (test_config). */
static ccd_stage_opts stage(float lr, int batch, int nns, int epochs, int patience)
{
    ccd_stage_opts s;
    memset(&s, 0, sizeof s);
    s.lr = lr;
    s.batch = batch;
    s.nns = nns;
    s.weight_decay = 1e-4f;
    s.epochs = epochs;
    s.eval_every = 1;
    s.patience = patience;
    return s;
}

void ccd_config_yelp(ccd_config *c)
{
    memset(c, 0, sizeof *c);
    c->n_teachers = 5;
    for (int m = 0; m < 5; m++)
        c->teachers[m] = (ccd_teacher_spec){CCD_MODEL_LIGHTGCN, 128, (uint64_t)m};
    c->student_dim = 8;
    c->seed = 1;
    c->base = ccd_train_opts_base_teacher().stage; /* section 2.5 */
    /* Distillation: up to 20 epochs, stopping after 3 evaluations without a better valid R@20.
     * The reference's 6 epochs (of which only 1 and 6 could be kept, 9.8) leave D_0 short of
     * its teachers; see docs/performance.md, "The CCD engine", for the measured difference. */
    c->kd = stage(5e-3f, 1024, 1, 20, 3);
    c->student = stage(1e-3f, 2048, 1, 6, 0);
    /* Teachers: stop after 2 evaluations without a better valid R@20 (an epoch of LWC-KD costs
     * far more than an evaluation). */
    c->teacher = stage(1e-3f, 2048, 1, 6, 2);
    c->kd_interesting = 40;
    c->kd_uninteresting_items = CCD_AUTO; /* ccd_rule_unint_items: 10,000 on Yelp */
    c->kd_uninteresting_users = CCD_AUTO; /* ccd_rule_unint_users: 11,500 on Yelp */
    c->batch_growth_pairs = 120000;       /* Yelp's block 0 (117,367 pairs) keeps its batches */
    c->batch_growth_nodes = 32768;        /* and Yelp's largest id space (27,211) too */
    c->kd_lambda = 0.01f;
    c->exclusion_topk = 40;
    static const ccd_student_block_opts s[5] = {{50, 1, 0, 1.0f, 0.0f},
                                                {100, 3, 5, 1.0f, 0.1f},
                                                {100, 5, 5, 0.9f, 0.0f},
                                                {50, 1, 5, 0.9f, 0.0f},
                                                {50, 3, 1, 0.9f, 0.0f}};
    static const ccd_teacher_block_opts t[5] = {
        {100, 5, 0, 5}, {100, 1, 3, 5}, {50, 3, 5, 1}, {100, 1, 3, 1}, {100, 1, 5, 1}};
    c->n_student_blocks = c->n_teacher_blocks = 5;
    memcpy(c->student_blocks, s, sizeof s);
    memcpy(c->teacher_blocks, t, sizeof t);
    c->student_replay_lambda = 0.5f;
    c->student_anneal = 10.0f;
    c->replay_eps = 1e-4f;
    c->init_topk = 20;
    c->teacher_replay_lambda = 0.5f;
    c->teacher_anneal = 5.0f;
    c->lwc_tau = 5.0f;
    c->lwc_lambda = 0.01f;
    c->lwc_graph_degree = 10.0;
    c->eval_users = 32768;         /* Yelp has about 12,000 users with test items: all of them */
    c->history_blocks = 1;         /* score on block k's graph, as the reference */
    c->lwc_max_neighbours = 12288; /* Yelp has at most 12,248 old users: exact there */
    c->replay = c->use_s = c->use_p = c->use_cl = true;
    c->update_teachers = c->collaborative = c->distill = true;
    c->parallel_teachers = true;
    c->parallel_teachers_max_mb = 512; /* Yelp: 203 MB, side by side; 4x Yelp: one at a time */
    /* not the reference's fresh student per block: measured better on every Yelp figure past
     * block 1 (docs/performance.md); configs/yelp-reference.ini turns it off */
    c->kd_warm_start = true;
}

void ccd_config_finetune(ccd_config *c)
{
    c->replay = c->use_s = c->use_p = c->use_cl = false;
    c->update_teachers = c->collaborative = c->distill = false;
}

int ccd_rule_unint_items(int n_items)
{
    int n = (int)(0.925 * n_items);
    return n < 10000 ? n : 10000;
}

int ccd_rule_unint_users(int n_users)
{
    int n = (int)(0.94 * n_users);
    return n < 11500 ? n : 11500;
}

double ccd_batch_growth(const ccd_config *c, int64_t train_pairs, int64_t nodes)
{
    double g = 1.0;
    if (c->batch_growth_pairs > 0 && train_pairs > c->batch_growth_pairs)
        g = (double)train_pairs / (double)c->batch_growth_pairs;
    /* A step costs the whole model (full propagation, dense Adam) and the replay sets grow with
     * the users, so the id space bounds the steps too: an incremental block on a large model
     * would otherwise take as many whole-model steps as its pairs or replay pairs ask for. */
    if (c->batch_growth_nodes > 0 && nodes > c->batch_growth_nodes &&
        (double)nodes / (double)c->batch_growth_nodes > g)
        g = (double)nodes / (double)c->batch_growth_nodes;
    return g;
}
