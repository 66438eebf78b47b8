/* test_zeroshot.c - unit tests for zero-shot prediction and group tallies. */
#include <stdlib.h>

#include "../harness.h"
#include "zeroshot.h"

static void test_predict(void)
{
    const float W[3 * 2] = {1, 0, 0, 1, -1, 0};
    const float x1[2] = {0.2f, 3.0f}, x2[2] = {-5, 1}, x3[2] = {1, 1};
    float score;
    CHECK(cl_zs_predict(W, 3, 2, x1, &score) == 1);
    CHECK(fabsf(score - 3.0f / sqrtf(9.04f)) < 1e-6f);
    CHECK(cl_zs_predict(W, 3, 2, x2, NULL) == 2);
    CHECK(cl_zs_predict(W, 3, 2, x3, NULL) == 0); /* tie -> lowest index */
}

static void test_tally(void)
{
    struct cl_zs_tally t = {0};
    struct cl_err e;
    /* group 7: 3 of 4 right; group 2: 1 of 2; no group: 1 of 1 */
    int labels[] = {0, 1, 1, 0, 1, 0, 1}, preds[] = {0, 1, 0, 0, 1, 1, 1};
    int64_t groups[] = {7, 7, 7, 7, 2, 2, -1};
    for (int i = 0; i < 7; i++)
        CHECK(cl_zs_add(&t, labels[i], preds[i], groups[i] >= 0, groups[i], &e) == CL_OK);
    CHECK(t.n == 7 && t.correct == 5);
    CHECK(fabs(cl_zs_accuracy(&t) - 5.0 / 7) < 1e-12);
    CHECK(t.ngroups == 2 && t.groups[0].group == 2 && t.groups[1].group == 7);
    double wa;
    int w = cl_zs_worst_group(&t, &wa);
    CHECK(w == 0 && fabs(wa - 0.5) < 1e-12);
    cl_zs_free(&t);
    CHECK(cl_zs_worst_group(&t, &wa) == -1);
}

TEST_MAIN("zeroshot", TEST(test_predict), TEST(test_tally))
