/* textspan.h - TextSpan (P1, SPEC §6): name what one attention head writes by
 * greedily picking, from a pool of text embeddings, the directions that explain
 * most of the variance of the head's components over a data set.
 *
 * Dimensions: N images, E embedding dim, M texts in the pool, r rank of the
 * text projection (default 80), m texts picked per head.
 *
 * The algorithm, as P1's code runs it on C [N,E] (one head over N images):
 *   1. texts T [M,E] are projected onto the span of the top-r right singular
 *      vectors of C (C not centred); they are NOT renormalised afterwards;
 *   2. C is centred over images;
 *   3. m times: score every text t by the variance over images of C t (t as it
 *      is, unnormalised; P1 takes the standard deviation, same argmax), pick
 *      the largest (lowest index on ties), and remove the picked direction
 *      u = t/|t| from C and from every text (t -= (t.u) u).
 * Here it runs without C: only the mean [E] and the centred scatter [E,E] of
 * the head are kept (accumulated a batch at a time), the top-r right singular
 * vectors are the top-r eigenvectors of the uncentred Gram C'C = scatter +
 * N mean mean', and every text lives in the r coordinates of that span, so
 * each pick costs O(M r^2) on the r x r covariance and removing a direction is
 * a rank-one update of it and of the text matrix.  No N x M product is formed.
 *
 * r is capped by the numerical rank of C: singular values below
 * s_max * max(N, E) * FLT_EPSILON (numpy's matrix_rank rule for float32 data)
 * are dropped; P1's code would keep r arbitrary null-space directions there.
 * Picking stops early when every remaining text has zero variance.
 *
 * Outputs per pick k: the pool index, the variance of the head along u_k (the
 * variance this pick explains: the u_k are orthonormal), P1's criterion
 * (sqrt of the unnormalised score), the cumulative share of the head's total
 * variance (trace of its covariance), and u_k itself [E].  The reconstruction
 * of a component c is mean + sum_k ((c - mean) . u_k) u_k, which equals P1's.
 * Variances use the unbiased divisor N - 1 (torch.std's default).
 */
#ifndef CL_TEXTSPAN_H
#define CL_TEXTSPAN_H

#include <stdint.h>

#include "status.h"

#define CL_TEXTSPAN_DEFAULT_RANK 80
#define CL_TEXTSPAN_MAX_DIM 65536     /* cap on E (untrusted streams) */

/* Streaming statistics of one head's components (Chan's pairwise merge of
 * batch means and scatters, in double). */
struct cl_textspan_stats {
    int dim;          /* E */
    int64_t n;        /* rows added */
    double *mean;     /* [E] mean of the rows merged so far */
    double *scatter;  /* [E,E] centred sum of outer products (upper triangle valid until finished) */
    double *batch;    /* [batch_cap,E] staged rows */
    double *delta;    /* [E] scratch: batch mean minus running mean */
    int batch_n, batch_cap;
};

enum cl_status cl_textspan_stats_build(struct cl_textspan_stats *s, int dim, int batch, struct cl_err *e);
void cl_textspan_stats_free(struct cl_textspan_stats *s); /* NULL ok */
/* Add one component [E] (f32). */
void cl_textspan_stats_add(struct cl_textspan_stats *s, const float *row);
/* Merge the staged rows (called by cl_textspan_run; harmless to call more). */
void cl_textspan_stats_flush(struct cl_textspan_stats *s);

struct cl_textspan_result {
    int dim;          /* E */
    int rank;         /* r used (after the cap) */
    int m;            /* texts picked (<= requested) */
    int64_t n;        /* images */
    double total_variance;  /* trace of the head's covariance */
    int *text;        /* [m] pool indices in pick order */
    double *variance; /* [m] variance of the head along each picked direction */
    double *score;    /* [m] P1's criterion at the pick: std of C t with t unnormalised */
    double *share;    /* [m] cumulative explained variance / total_variance */
    float *basis;     /* [m,E] the picked directions, orthonormal, in order */
    float *mean;      /* [E] the head's mean */
};

/* Run TextSpan on the statistics s and texts [M,E] (row-major f32, as given:
 * normalise them first for P1's setting).  rank <= 0 means the default.
 * Fills out (free with cl_textspan_result_free). */
enum cl_status cl_textspan_run(struct cl_textspan_stats *s, const float *texts, int M, int rank, int m,
                               struct cl_textspan_result *out, struct cl_err *e);
void cl_textspan_result_free(struct cl_textspan_result *r); /* NULL ok */

/* out [E] = mean + sum_k ((c - mean) . basis_k) basis_k, basis [m,E] orthonormal. */
void cl_textspan_reconstruct(const float *basis, const float *mean, int m, int dim, const float *c, float *out);

#endif
