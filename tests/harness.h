/* harness.h - a tiny test harness: CHECK records a failure and goes on;
 * TEST_MAIN runs the listed tests and ends with "N passed, N failed",
 * exiting non-zero if anything failed. */
#ifndef CL_HARNESS_H
#define CL_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int th_passed, th_failed, th_cur_failed;
static const char *th_cur;

#define CHECK(cond) do { if (!(cond)) { th_cur_failed = 1; \
    fprintf(stderr, "  FAIL %s:%d in %s: %s\n", __FILE__, __LINE__, th_cur, #cond); } } while (0)
#define CHECKF(cond, ...) do { if (!(cond)) { th_cur_failed = 1; \
    fprintf(stderr, "  FAIL %s:%d in %s: %s: ", __FILE__, __LINE__, th_cur, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* Compare two float arrays; prints the largest absolute and relative difference. */
#define CHECK_CLOSE(a, b, n, atol, rtol) do { double mx_ = 0, mr_ = 0; size_t at_ = 0; \
    for (size_t i_ = 0; i_ < (size_t)(n); i_++) { double d_ = fabs((double)(a)[i_] - (double)(b)[i_]); \
        double r_ = d_ / (fabs((double)(b)[i_]) + 1e-30); \
        if (d_ > (atol) + (rtol) * fabs((double)(b)[i_]) && d_ > mx_) at_ = i_; \
        if (d_ > mx_) { mx_ = d_; } \
        if (r_ > mr_ && d_ > (atol)) { mr_ = r_; } } \
    int ok_ = 1; for (size_t i_ = 0; i_ < (size_t)(n); i_++) \
        if (!(fabs((double)(a)[i_] - (double)(b)[i_]) <= (atol) + (rtol) * fabs((double)(b)[i_]))) { ok_ = 0; break; } \
    if (!ok_) { th_cur_failed = 1; fprintf(stderr, "  FAIL %s:%d in %s: %s vs %s: max abs diff %.3g (at %zu), max rel %.3g\n", \
        __FILE__, __LINE__, th_cur, #a, #b, mx_, at_, mr_); } } while (0)

typedef void (*th_fn)(void);
struct th_case { const char *name; th_fn fn; };
#define TEST(name) { #name, name }

static inline int th_run(const char *suite, const struct th_case *cases, int n)
{
    for (int i = 0; i < n; i++) {
        th_cur = cases[i].name;
        th_cur_failed = 0;
        cases[i].fn();
        if (th_cur_failed) { th_failed++; fprintf(stderr, "FAIL %s.%s\n", suite, th_cur); }
        else { th_passed++; fprintf(stderr, "ok   %s.%s\n", suite, th_cur); }
    }
    printf("%d passed, %d failed\n", th_passed, th_failed);
    return th_failed ? 1 : 0;
}
#define TEST_MAIN(suite, ...) int main(void) { static const struct th_case c_[] = { __VA_ARGS__ }; \
    return th_run(suite, c_, (int)(sizeof c_ / sizeof c_[0])); }

#endif
