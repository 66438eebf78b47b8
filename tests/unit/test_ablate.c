/* test_ablate.c - parts, selections, mean-ablation and TextSpan replacement:
 * a planted spurious head whose mean-ablation lifts worst-group accuracy, the
 * one-pass constant equal to explicit ablation, spec parsing and its errors,
 * accuracy tallies and nearest neighbours. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "ablate.h"
#include "textspan.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand()); }

/* A decompose-like item: heads [L,H,E] (or [L,H,T,E]), mlps [L,E], embed [E]. */
static void make_item(struct cl_item *it, int L, int H, int T, int E, const int *layers)
{
    struct cl_tensor *t;
    struct cl_err e;
    int64_t hs[4] = {L, H, T ? T : E, E}, ms[2] = {L, E}, es[1] = {E}, ls[1] = {L};
    cl_item_set_id(it, "x", &e);
    cl_item_add(it, "heads", CL_F32, T ? 4 : 3, hs, &t, &e);
    for (size_t i = 0; i < cl_tensor_numel(t); i++) ((float *)t->data)[i] = (float)nrand();
    cl_item_add(it, "mlps", CL_F32, 2, ms, &t, &e);
    for (size_t i = 0; i < cl_tensor_numel(t); i++) ((float *)t->data)[i] = (float)nrand();
    cl_item_add(it, "embed", CL_F32, 1, es, &t, &e);
    for (size_t i = 0; i < cl_tensor_numel(t); i++) ((float *)t->data)[i] = (float)nrand();
    if (layers) {
        cl_item_add(it, "layers", CL_I32, 1, ls, &t, &e);
        memcpy(t->data, layers, (size_t)L * sizeof(int));
    }
}

static void test_index_lists(void)
{
    const int vals[] = {8, 9, 10, 11};
    uint8_t m[4];
    struct cl_err e;
    memset(m, 0, 4);
    CHECK(cl_index_list_parse("9-10", vals, 4, m, &e) == CL_OK && !m[0] && m[1] && m[2] && !m[3]);
    memset(m, 0, 4);
    CHECK(cl_index_list_parse("8,11", vals, 4, m, &e) == CL_OK && m[0] && !m[1] && !m[2] && m[3]);
    memset(m, 0, 4);
    CHECK(cl_index_list_parse("all", vals, 4, m, &e) == CL_OK && m[0] && m[1] && m[2] && m[3]);
    CHECK(cl_index_list_parse("0-7", vals, 4, m, &e) == CL_ERR_USAGE);
    CHECKF(strstr(e.msg, "available 8-11") != NULL, "%s", e.msg);
    CHECK(cl_index_list_parse("3-1", vals, 4, m, &e) == CL_ERR_USAGE);
    CHECK(cl_index_list_parse("9,", vals, 4, m, &e) == CL_ERR_USAGE);
    CHECK(cl_index_list_parse("", vals, 4, m, &e) == CL_ERR_USAGE);
    CHECK(cl_index_list_parse("x", vals, 4, m, &e) == CL_ERR_USAGE);
    CHECK(cl_index_list_parse("99999999999999", vals, 4, m, &e) == CL_ERR_USAGE);
}

static void test_shapes_and_selections(void)
{
    struct cl_item it = {0};
    struct cl_parts_shape s;
    struct cl_selection sel;
    struct cl_err e;
    const int layers[] = {8, 9, 10};
    make_item(&it, 3, 4, 0, 6, layers);
    CHECK(cl_parts_shape_of(&it, &s, &e) == CL_OK);
    CHECK(s.L == 3 && s.H == 4 && s.T == 0 && s.E == 6 && s.layers[2] == 10 && s.has_embed && !s.has_rest);
    CHECK(cl_selection_build(&sel, &s, &e) == CL_OK);
    CHECK(cl_selection_add(&sel, &s, "heads:9.3,10.0", &e) == CL_OK);
    CHECK(sel.head[1 * 4 + 3] && sel.head[2 * 4 + 0] && cl_selection_count(&sel, &s) == 2);
    CHECK(cl_selection_add(&sel, &s, "layers:8", &e) == CL_OK && cl_selection_count(&sel, &s) == 6);
    CHECK(cl_selection_add(&sel, &s, "mlps:9-10", &e) == CL_OK && sel.mlp[1] && sel.mlp[2] && !sel.mlp[0]);
    CHECK(cl_selection_add(&sel, &s, "embed", &e) == CL_OK && sel.embed);
    CHECK(cl_selection_add(&sel, &s, "heads:7.0", &e) == CL_ERR_USAGE);
    CHECKF(strstr(e.msg, "7.0") && strstr(e.msg, "8-10"), "%s", e.msg);
    CHECK(cl_selection_add(&sel, &s, "heads:9.4", &e) == CL_ERR_USAGE);
    CHECK(cl_selection_add(&sel, &s, "heads:9", &e) == CL_ERR_USAGE);
    CHECK(cl_selection_add(&sel, &s, "rest", &e) == CL_ERR_USAGE);       /* no rest part */
    CHECK(cl_selection_add(&sel, &s, "cls:all", &e) == CL_ERR_USAGE);    /* no tokens */
    CHECK(cl_selection_add(&sel, &s, "neurons:1", &e) == CL_ERR_USAGE);
    CHECK(cl_selection_add(&sel, &s, "layers:0-7", &e) == CL_ERR_USAGE);
    cl_selection_free(&sel);
    /* inconsistent shapes */
    struct cl_item bad = {0};
    struct cl_tensor *t;
    int64_t hs[3] = {2, 2, 5}, ms[2] = {3, 5};
    cl_item_add(&bad, "heads", CL_F32, 3, hs, &t, &e);
    cl_item_add(&bad, "mlps", CL_F32, 2, ms, &t, &e);
    CHECK(cl_parts_shape_of(&bad, &s, &e) == CL_ERR_DATA);
    cl_item_free(&bad);
    struct cl_item none = {0};
    CHECK(cl_parts_shape_of(&none, &s, &e) == CL_ERR_DATA);
    cl_item_free(&it);
}

/* Loaded parts sum to what the tensors sum to; tokens: heads are token sums and
 * cls is token 0; a differently shaped item is refused by name. */
static void test_load_tokens(void)
{
    struct cl_item it = {0}, other = {0};
    struct cl_parts_shape s;
    struct cl_parts p;
    struct cl_err e;
    make_item(&it, 2, 3, 5, 4, NULL);
    CHECK(cl_parts_shape_of(&it, &s, &e) == CL_OK && s.T == 5);
    CHECK(cl_parts_build(&p, &s, &e) == CL_OK);
    CHECK(cl_parts_load(&p, &it, "x.cts", 0, &e) == CL_OK);
    const float *h = cl_item_get(&it, "heads")->data;
    double worst = 0;
    for (int lh = 0; lh < 6; lh++)
        for (int i = 0; i < 4; i++) {
            double sum = 0;
            for (int t = 0; t < 5; t++) sum += h[(lh * 5 + t) * 4 + i];
            worst = fmax(worst, fabs(sum - p.heads[lh * 4 + i]));
            worst = fmax(worst, fabs(h[(lh * 5) * 4 + i] - p.cls[lh * 4 + i]));
        }
    CHECKF(worst < 1e-5, "token sums off by %g", worst);
    make_item(&other, 2, 3, 0, 4, NULL);
    CHECK(cl_parts_load(&p, &other, "x.cts", 7, &e) == CL_ERR_DATA);
    CHECKF(strstr(e.msg, "x.cts: item 7") != NULL, "%s", e.msg);
    cl_parts_free(&p);
    cl_item_free(&it);
    cl_item_free(&other);
}

/* Toy Waterbirds: class c in {0,1}, background b in {0,1}, group 2c+b.  Head
 * 1.0 writes the class along d = e1 - e0, head 1.1 writes the background along
 * d more strongly, head 0.1 is noise.  Backgrounds agree with the class in 90%
 * of the data, so the minority groups fail.  Mean-ablating 1.1 lifts the worst
 * group; ablating the noise head does not. */
static void test_spurious_head(void)
{
    enum { L = 2, H = 2, E = 8, K = 2, N = 400 };
    float cls[K * E] = {0};
    cls[0] = 1;
    cls[E + 1] = 1;
    struct cl_item it = {0};
    make_item(&it, L, H, 0, E, NULL);
    struct cl_parts_shape s;
    struct cl_err e;
    CHECK(cl_parts_shape_of(&it, &s, &e) == CL_OK);
    static float heads[N][L * H * E], mlps[N][L * E], embed[N][E];
    int label[N], group[N];
    for (int n = 0; n < N; n++) {
        int c = n % 2, b = (n % 20 == 0 || n % 20 == 1) ? 1 - c : c; /* 10% minority */
        label[n] = c;
        group[n] = 2 * c + b;
        for (int i = 0; i < L * H * E; i++) heads[n][i] = (float)(0.05 * nrand());
        for (int i = 0; i < L * E; i++) mlps[n][i] = (float)(0.05 * nrand());
        for (int i = 0; i < E; i++) embed[n][i] = (float)(0.3 + 0.05 * nrand());
        float sc = c ? 1.0f : -1.0f, sb = b ? 1.6f : -1.6f;
        float *h10 = heads[n] + (1 * H + 0) * E, *h11 = heads[n] + (1 * H + 1) * E, *h01 = heads[n] + (0 * H + 1) * E;
        h10[1] += sc; h10[0] -= sc;
        h11[1] += sb; h11[0] -= sb;
        h01[2] += (float)(3 * nrand()); /* large but irrelevant to the classes */
    }
    struct cl_parts p, *mean;
    struct cl_parts_mean pm;
    CHECK(cl_parts_build(&p, &s, &e) == CL_OK && cl_parts_mean_build(&pm, &s, &e) == CL_OK);
    for (int n = 0; n < N; n++) {
        memcpy(p.heads, heads[n], sizeof heads[n]);
        memcpy(p.mlps, mlps[n], sizeof mlps[n]);
        memcpy(p.embed, embed[n], sizeof embed[n]);
        cl_parts_mean_add(&pm, &p);
    }
    CHECK(cl_parts_mean_finish(&pm, &e) == CL_OK);
    mean = &pm.mean;
    const char *specs[3] = {NULL, "heads:1.1", "heads:0.1"};
    double worst[3], overall[3];
    for (int k = 0; k < 3; k++) {
        struct cl_ablation ab;
        struct cl_selection sel;
        CHECK(cl_ablation_build(&ab, &s, &e) == CL_OK && cl_selection_build(&sel, &s, &e) == CL_OK);
        if (specs[k]) CHECK(cl_selection_add(&sel, &s, specs[k], &e) == CL_OK);
        cl_ablation_set(&ab, &sel, CL_ACT_MEAN);
        float konst[E], v[E], direct[E];
        cl_ablation_constant(&ab, mean, konst);
        int pred[N];
        double gap = 0;
        for (int n = 0; n < N; n++) {
            memcpy(p.heads, heads[n], sizeof heads[n]);
            memcpy(p.mlps, mlps[n], sizeof mlps[n]);
            memcpy(p.embed, embed[n], sizeof embed[n]);
            cl_ablation_apply(&ab, &p, v);
            for (int i = 0; i < E; i++) v[i] += konst[i];
            /* the same thing done explicitly: swap the part for its mean, sum */
            struct cl_parts q = p;
            float hcopy[L * H * E];
            memcpy(hcopy, p.heads, sizeof hcopy);
            for (int lh = 0; lh < L * H; lh++)
                if (sel.head[lh]) memcpy(hcopy + lh * E, mean->heads + lh * E, E * sizeof(float));
            q.heads = hcopy;
            cl_parts_sum(&q, direct);
            for (int i = 0; i < E; i++) gap = fmax(gap, fabs(direct[i] - v[i]));
            pred[n] = cl_zeroshot_predict(cls, K, E, v);
        }
        CHECKF(gap < 1e-5, "one-pass constant differs from explicit ablation by %g", gap);
        struct cl_accuracy acc;
        CHECK(cl_accuracy_tally(&acc, pred, label, group, N, &e) == CL_OK);
        CHECK(acc.ngroups == 4 && acc.n == N);
        worst[k] = cl_accuracy_group(&acc, acc.worst);
        overall[k] = 100.0 * (double)acc.correct / (double)acc.n;
        cl_accuracy_free(&acc);
        cl_selection_free(&sel);
        cl_ablation_free(&ab);
    }
    fprintf(stderr, "  worst group: baseline %.1f%%, spurious head ablated %.1f%%, noise head ablated %.1f%%\n",
            worst[0], worst[1], worst[2]);
    CHECKF(worst[0] < 10, "baseline worst group %.1f%% (the planted bias should break it)", worst[0]);
    CHECKF(worst[1] > 95, "ablating the spurious head leaves worst group at %.1f%%", worst[1]);
    CHECKF(worst[2] < 10, "ablating a noise head changed the worst group to %.1f%%", worst[2]);
    CHECK(overall[1] > overall[0]);
    cl_parts_free(&p);
    cl_parts_mean_free(&pm);
    cl_item_free(&it);
}

/* Replacing a head by a TextSpan basis equals cl_textspan_reconstruct; keep-only
 * mean-ablates the rest; CLS-slice ablation moves exactly the token-0 part. */
static void test_replace_keep_cls(void)
{
    enum { L = 1, H = 2, T = 3, E = 5 };
    struct cl_item it = {0};
    struct cl_parts_shape s;
    struct cl_parts p, m;
    struct cl_err e;
    make_item(&it, L, H, T, E, NULL);
    CHECK(cl_parts_shape_of(&it, &s, &e) == CL_OK);
    CHECK(cl_parts_build(&p, &s, &e) == CL_OK && cl_parts_build(&m, &s, &e) == CL_OK);
    CHECK(cl_parts_load(&p, &it, "x", 0, &e) == CL_OK);
    for (size_t i = 0; i < m.size; i++) m.block[i] = (float)nrand();
    float basis[2 * E] = {0}, tsmean[E], v[E], k[E], want[E];
    basis[0] = 0.6f; basis[1] = 0.8f; basis[E + 2] = 1;
    for (int i = 0; i < E; i++) tsmean[i] = (float)nrand();
    struct cl_ablation ab;
    CHECK(cl_ablation_build(&ab, &s, &e) == CL_OK);
    CHECK(cl_ablation_replace(&ab, 0, 1, basis, 2, tsmean, &e) == CL_OK);
    CHECK(cl_ablation_replace(&ab, 3, 1, basis, 2, tsmean, &e) == CL_ERR_DATA);
    CHECK(cl_ablation_replace(&ab, 0, 2, basis, 2, tsmean, &e) == CL_ERR_DATA);
    cl_ablation_apply(&ab, &p, v);
    cl_textspan_reconstruct(basis, tsmean, 2, E, p.heads + E, want);
    for (int i = 0; i < E; i++) want[i] += p.heads[i] + p.mlps[i] + p.embed[i];
    CHECK_CLOSE(v, want, E, 1e-5, 1e-5);
    cl_ablation_free(&ab);
    /* keep only head 0.0: everything else is its mean */
    struct cl_selection all, keep;
    CHECK(cl_ablation_build(&ab, &s, &e) == CL_OK);
    cl_selection_build(&all, &s, &e);
    cl_selection_build(&keep, &s, &e);
    CHECK(cl_selection_add(&all, &s, "all", &e) == CL_OK && cl_selection_add(&keep, &s, "heads:0.0", &e) == CL_OK);
    cl_ablation_set(&ab, &all, CL_ACT_MEAN);
    cl_ablation_set(&ab, &keep, CL_ACT_KEEP);
    cl_ablation_apply(&ab, &p, v);
    cl_ablation_constant(&ab, &m, k);
    for (int i = 0; i < E; i++) {
        want[i] = p.heads[i] + m.heads[E + i] + m.mlps[i] + m.embed[i];
        v[i] += k[i];
    }
    CHECK_CLOSE(v, want, E, 1e-5, 1e-5);
    cl_ablation_free(&ab);
    /* CLS-to-CLS of every head mean-ablated */
    struct cl_selection cls;
    cl_selection_build(&cls, &s, &e);
    CHECK(cl_selection_add(&cls, &s, "cls:all", &e) == CL_OK);
    CHECK(cl_ablation_build(&ab, &s, &e) == CL_OK);
    cl_ablation_set(&ab, &cls, CL_ACT_MEAN);
    cl_ablation_apply(&ab, &p, v);
    cl_ablation_constant(&ab, &m, k);
    for (int i = 0; i < E; i++) {
        want[i] = p.mlps[i] + p.embed[i];
        for (int h = 0; h < H; h++) want[i] += p.heads[h * E + i] - p.cls[h * E + i] + m.cls[h * E + i];
        v[i] += k[i];
    }
    CHECK_CLOSE(v, want, E, 1e-5, 1e-5);
    cl_ablation_free(&ab);
    cl_selection_free(&all);
    cl_selection_free(&keep);
    cl_selection_free(&cls);
    cl_parts_free(&p);
    cl_parts_free(&m);
    cl_item_free(&it);
}

static void test_accuracy_and_nearest(void)
{
    int pred[6] = {0, 1, 1, 0, 1, 1}, label[6] = {0, 1, 0, 0, 1, 0}, group[6] = {0, 0, 2, 2, -1, 2};
    struct cl_accuracy acc;
    struct cl_err e;
    CHECK(cl_accuracy_tally(&acc, pred, label, group, 6, &e) == CL_OK);
    CHECK(acc.correct == 4 && acc.ngroups == 3 && acc.worst == 2);
    CHECK(fabs(cl_accuracy_group(&acc, 2) - 100.0 / 3) < 1e-9 && isnan(cl_accuracy_group(&acc, 1)));
    cl_accuracy_free(&acc);
    CHECK(cl_accuracy_tally(&acc, pred, label, NULL, 6, &e) == CL_OK && acc.worst == -1 && acc.ngroups == 0);
    cl_accuracy_free(&acc);
    float db[5 * 2] = {1, 0, 0, 1, 1, 1, -1, 0, 2, 0.1f}, q[2] = {1, 0};
    int64_t idx[3];
    float sim[3];
    CHECK(cl_nearest(db, 5, 2, q, 3, 0, idx, sim) == 3);
    CHECK(idx[0] == 4 && idx[1] == 2 && idx[2] == 1);
    CHECK(sim[0] >= sim[1] && sim[1] >= sim[2]);
    CHECK(cl_nearest(db, 2, 2, q, 3, -1, idx, sim) == 2 && idx[0] == 0);
}

TEST_MAIN("ablate", TEST(test_index_lists), TEST(test_shapes_and_selections), TEST(test_load_tokens),
          TEST(test_spurious_head), TEST(test_replace_keep_cls), TEST(test_accuracy_and_nearest))
