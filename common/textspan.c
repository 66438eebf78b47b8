/* textspan.c - TextSpan (P1) in E x E space: streaming head statistics, the
 * top-r span by a partial symmetric eigendecomposition (LAPACK dsyevr from
 * OpenBLAS), greedy picks by variance with rank-one deflation in r x r space.
 *
 * Dimensions: N images, E embedding dim, M texts, r rank of the span, m picks.
 */
#include "textspan.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK's symmetric eigensolver (MRRR), exported by libopenblas with the
 * Fortran calling convention (trailing hidden lengths of the character args),
 * so no lapacke.h is needed. */
extern void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
                    const int *lda, const double *vl, const double *vu, const int *il, const int *iu,
                    const double *abstol, int *m, double *w, double *z, const int *ldz, int *isuppz,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t,
                    size_t, size_t);

#define TEXT_BLOCK 512 /* texts converted to double at a time when projecting */

/* ------------------------------------------------------------ statistics */

enum cl_status cl_textspan_stats_build(struct cl_textspan_stats *s, int dim, int batch, struct cl_err *e)
{
    memset(s, 0, sizeof *s);
    if (dim < 1 || dim > CL_TEXTSPAN_MAX_DIM)
        return cl_errf(e, CL_ERR_DATA, "textspan: embedding dim %d out of range 1..%d", dim, CL_TEXTSPAN_MAX_DIM);
    if (batch < 1)
        batch = 1;
    s->dim = dim;
    s->batch_cap = batch;
    s->mean = calloc((size_t)dim, sizeof *s->mean);
    s->scatter = calloc((size_t)dim * dim, sizeof *s->scatter);
    s->batch = malloc((size_t)batch * dim * sizeof *s->batch);
    s->delta = malloc((size_t)dim * sizeof *s->delta);
    if (!s->mean || !s->scatter || !s->batch || !s->delta) {
        cl_textspan_stats_free(s);
        return cl_errf(e, CL_ERR_NOMEM, "textspan: out of memory for the statistics of a head (E = %d)", dim);
    }
    return CL_OK;
}

void cl_textspan_stats_free(struct cl_textspan_stats *s)
{
    if (!s)
        return;
    free(s->mean);
    free(s->scatter);
    free(s->batch);
    free(s->delta);
    memset(s, 0, sizeof *s);
}

void cl_textspan_stats_add(struct cl_textspan_stats *s, const float *row)
{
    double *dst = s->batch + (size_t)s->batch_n * s->dim; /* [E] */
    for (int i = 0; i < s->dim; i++)
        dst[i] = row[i];
    if (++s->batch_n == s->batch_cap)
        cl_textspan_stats_flush(s);
}

/* Merge the staged batch (Chan et al.): with d = mean_b - mean_a,
 * scatter += Xc'Xc + (na nb / n) d d' and mean += d nb / n. */
void cl_textspan_stats_flush(struct cl_textspan_stats *s)
{
    int nb = s->batch_n, E = s->dim;
    if (nb == 0)
        return;
    double na = (double)s->n, n = na + nb;
    for (int i = 0; i < E; i++) {
        double acc = 0;
        for (int r = 0; r < nb; r++)
            acc += s->batch[(size_t)r * E + i];
        double mean_b = acc / nb;
        for (int r = 0; r < nb; r++)
            s->batch[(size_t)r * E + i] -= mean_b;
        s->delta[i] = mean_b - s->mean[i];
        s->mean[i] += s->delta[i] * nb / n;
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, E, nb, 1.0, s->batch, E, 1.0, s->scatter, E);
    if (na > 0)
        cblas_dsyr(CblasRowMajor, CblasUpper, E, na * nb / n, s->delta, 1, s->scatter, E);
    s->n += nb;
    s->batch_n = 0;
}

/* ---------------------------------------------------------------- result */

void cl_textspan_result_free(struct cl_textspan_result *r)
{
    if (!r)
        return;
    free(r->text);
    free(r->variance);
    free(r->score);
    free(r->share);
    free(r->basis);
    free(r->mean);
    memset(r, 0, sizeof *r);
}

static enum cl_status result_alloc(struct cl_textspan_result *r, int m, int E, struct cl_err *e)
{
    size_t mm = m > 0 ? (size_t)m : 1;
    r->text = calloc(mm, sizeof *r->text);
    r->variance = calloc(mm, sizeof *r->variance);
    r->score = calloc(mm, sizeof *r->score);
    r->share = calloc(mm, sizeof *r->share);
    r->basis = calloc(mm * E, sizeof *r->basis);
    r->mean = calloc((size_t)E, sizeof *r->mean);
    if (!r->text || !r->variance || !r->score || !r->share || !r->basis || !r->mean) {
        cl_textspan_result_free(r);
        return cl_errf(e, CL_ERR_NOMEM, "textspan: out of memory for %d picks of dim %d", m, E);
    }
    return CL_OK;
}

/* ------------------------------------------------------------ the span */

/* Top eigenvectors of the uncentred Gram G = scatter + n mean mean' (upper
 * triangle of scatter is read), largest first, cut at the numerical rank.
 * V [want,E] receives them as rows; returns the count kept in *r. */
static enum cl_status top_span(const struct cl_textspan_stats *s, int want, double *V, int *r, struct cl_err *e)
{
    int E = s->dim, info = 0, found = 0, lwork = -1, liwork = -1, iwq = 0;
    double n = (double)s->n, wq = 0, vl = 0, vu = 0, abstol = 0;
    int il = E - want + 1, iu = E;
    double *G = malloc((size_t)E * E * sizeof *G);   /* [E,E] */
    double *w = malloc((size_t)E * sizeof *w);       /* [E] eigenvalues, ascending */
    double *z = malloc((size_t)E * want * sizeof *z); /* [want,E]: column-major [E,want] */
    int *isuppz = malloc((size_t)2 * want * sizeof *isuppz);
    double *work = NULL;
    int *iwork = NULL;
    enum cl_status st = CL_OK;
    if (!G || !w || !z || !isuppz) {
        st = cl_errf(e, CL_ERR_NOMEM, "textspan: out of memory for the %d x %d Gram matrix", E, E);
        goto done;
    }
    /* row-major upper triangle == column-major lower triangle */
    for (int i = 0; i < E; i++)
        for (int j = i; j < E; j++)
            G[(size_t)i * E + j] = s->scatter[(size_t)i * E + j] + n * s->mean[i] * s->mean[j];
    dsyevr_("V", "I", "L", &E, G, &E, &vl, &vu, &il, &iu, &abstol, &found, w, z, &E, isuppz, &wq, &lwork,
            &iwq, &liwork, &info, 1, 1, 1);
    if (info != 0) {
        st = cl_errf(e, CL_ERR_DATA, "textspan: LAPACK dsyevr workspace query failed (info %d)", info);
        goto done;
    }
    lwork = (int)wq + 1;
    liwork = iwq;
    work = malloc((size_t)lwork * sizeof *work);
    iwork = malloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork) {
        st = cl_errf(e, CL_ERR_NOMEM, "textspan: out of memory for the eigensolver");
        goto done;
    }
    dsyevr_("V", "I", "L", &E, G, &E, &vl, &vu, &il, &iu, &abstol, &found, w, z, &E, isuppz, work, &lwork,
            iwork, &liwork, &info, 1, 1, 1);
    if (info != 0 || found != want) {
        st = cl_errf(e, CL_ERR_DATA, "textspan: eigendecomposition of the %d x %d Gram matrix failed (info %d, %d of %d)",
                     E, E, info, found, want);
        goto done;
    }
    /* singular values s = sqrt(eigenvalue); numpy's float32 rank rule */
    double smax = sqrt(fmax(w[found - 1], 0.0));
    double tol = smax * (s->n > E ? (double)s->n : (double)E) * FLT_EPSILON;
    int kept = 0;
    for (int k = found - 1; k >= 0; k--) {
        if (!(sqrt(fmax(w[k], 0.0)) > tol))
            break;
        memcpy(V + (size_t)kept * E, z + (size_t)k * E, (size_t)E * sizeof *V);
        kept++;
    }
    *r = kept;
done:
    free(G);
    free(w);
    free(z);
    free(isuppz);
    free(work);
    free(iwork);
    return st;
}

/* ------------------------------------------------------------ TextSpan */

enum cl_status cl_textspan_run(struct cl_textspan_stats *s, const float *texts, int M, int rank, int m,
                               struct cl_textspan_result *out, struct cl_err *e)
{
    memset(out, 0, sizeof *out);
    cl_textspan_stats_flush(s);
    int E = s->dim;
    if (s->n < 2)
        return cl_errf(e, CL_ERR_DATA, "textspan: %lld component(s): at least 2 images are needed for a variance",
                       (long long)s->n);
    if (M < 1)
        return cl_errf(e, CL_ERR_DATA, "textspan: the text pool is empty");
    if (m < 0)
        m = 0;
    if (rank <= 0)
        rank = CL_TEXTSPAN_DEFAULT_RANK;
    int want = rank;
    if (want > E)
        want = E;
    if ((int64_t)want > s->n)
        want = (int)s->n;

    double *V = malloc((size_t)want * E * sizeof *V);      /* [r,E] span, rows orthonormal */
    double *VS = malloc((size_t)want * E * sizeof *VS);    /* [r,E] V S */
    double *Sr = malloc((size_t)want * want * sizeof *Sr); /* [r,r] V S V', deflated as we go */
    double *A = malloc((size_t)M * want * sizeof *A);      /* [M,r] texts in span coordinates */
    double *Q = malloc((size_t)M * want * sizeof *Q);      /* [M,r] A Sr */
    double *Tb = malloc((size_t)TEXT_BLOCK * E * sizeof *Tb); /* [block,E] texts in double */
    double *u = malloc((size_t)want * sizeof *u);          /* [r] picked direction */
    double *wv = malloc((size_t)want * sizeof *wv);        /* [r] Sr u */
    double *g = malloc((size_t)M * sizeof *g);             /* [M] A u */
    double *ue = malloc((size_t)E * sizeof *ue);           /* [E] V' u */
    enum cl_status st = CL_OK;
    int r = 0;
    if (!V || !VS || !Sr || !A || !Q || !Tb || !u || !wv || !g || !ue) {
        st = cl_errf(e, CL_ERR_NOMEM, "textspan: out of memory for %d texts x rank %d", M, want);
        goto done;
    }
    if ((st = top_span(s, want, V, &r, e)) != CL_OK)
        goto done;
    int picks = m;
    if (picks > r)
        picks = r;
    if (picks > M)
        picks = M;
    if ((st = result_alloc(out, picks, E, e)) != CL_OK)
        goto done;
    out->dim = E;
    out->rank = r;
    out->n = s->n;
    double inv = 1.0 / (double)(s->n - 1);
    for (int i = 0; i < E; i++) {
        out->total_variance += s->scatter[(size_t)i * E + i] * inv;
        out->mean[i] = (float)s->mean[i];
    }
    if (r == 0)
        goto done;

    /* Sr = V S V' with S = scatter / (N - 1) (upper triangle of scatter) */
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, r, E, inv, s->scatter, E, V, E, 0.0, VS, E);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, r, E, 1.0, VS, E, V, E, 0.0, Sr, r);
    /* A = T V': the projection of every text onto the span, in its coordinates */
    for (int b = 0; b < M; b += TEXT_BLOCK) {
        int nb = M - b < TEXT_BLOCK ? M - b : TEXT_BLOCK;
        for (size_t i = 0; i < (size_t)nb * E; i++)
            Tb[i] = texts[(size_t)b * E + i];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, r, E, 1.0, Tb, E, V, E, 0.0, A + (size_t)b * r, r);
    }

    double cum = 0;
    for (int k = 0; k < picks; k++) {
        /* score_j = a_j' Sr a_j: the variance over images of C t_j */
        cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, M, r, 1.0, Sr, r, A, r, 0.0, Q, r);
        int best = -1;
        double bs = 0;
        for (int j = 0; j < M; j++) {
            const double *a = A + (size_t)j * r, *q = Q + (size_t)j * r;
            double sc = 0;
            for (int i = 0; i < r; i++)
                sc += a[i] * q[i];
            if (sc > bs) {
                bs = sc;
                best = j;
            }
        }
        if (best < 0)
            break; /* every remaining text has zero variance */
        const double *a = A + (size_t)best * r;
        double norm = cblas_dnrm2(r, a, 1);
        if (!(norm > 0))
            break;
        for (int i = 0; i < r; i++)
            u[i] = a[i] / norm;
        /* the variance explained along u, then Sr <- (I - uu') Sr (I - uu') */
        cblas_dsymv(CblasRowMajor, CblasUpper, r, 1.0, Sr, r, u, 1, 0.0, wv, 1);
        double c = cblas_ddot(r, u, 1, wv, 1);
        cblas_dsyr2(CblasRowMajor, CblasUpper, r, -1.0, u, 1, wv, 1, Sr, r);
        cblas_dsyr(CblasRowMajor, CblasUpper, r, c, u, 1, Sr, r);
        /* texts: A <- A - (A u) u' */
        cblas_dgemv(CblasRowMajor, CblasNoTrans, M, r, 1.0, A, r, u, 1, 0.0, g, 1);
        cblas_dger(CblasRowMajor, M, r, -1.0, g, 1, u, 1, A, r);
        cblas_dgemv(CblasRowMajor, CblasTrans, r, E, 1.0, V, E, u, 1, 0.0, ue, 1);
        out->text[k] = best;
        out->score[k] = sqrt(bs);
        out->variance[k] = c;
        cum += c;
        out->share[k] = out->total_variance > 0 ? cum / out->total_variance : 0;
        for (int i = 0; i < E; i++)
            out->basis[(size_t)k * E + i] = (float)ue[i];
        out->m = k + 1;
    }
done:
    free(V);
    free(VS);
    free(Sr);
    free(A);
    free(Q);
    free(Tb);
    free(u);
    free(wv);
    free(g);
    free(ue);
    if (st != CL_OK)
        cl_textspan_result_free(out);
    return st;
}

void cl_textspan_reconstruct(const float *basis, const float *mean, int m, int dim, const float *c, float *out)
{
    for (int i = 0; i < dim; i++)
        out[i] = mean[i];
    for (int k = 0; k < m; k++) {
        const float *b = basis + (size_t)k * dim;
        double dot = 0;
        for (int i = 0; i < dim; i++)
            dot += ((double)c[i] - mean[i]) * b[i];
        for (int i = 0; i < dim; i++)
            out[i] += (float)(dot * b[i]);
    }
}
