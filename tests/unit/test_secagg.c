/* Secure aggregation (core/crypto/secagg.c): Shamir's scheme on its own, then whole rounds of
 * the protocol: the server's sum equals the plain sum of the survivors' vectors (to the
 * fixed-point step) with and without dropouts, one masked vector looks nothing like its input,
 * fewer than t survivors reveal nothing, and a tampered share is refused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fedmq/common.h"
#include "fedmq/secagg.h"
#include "test_util.h"

static void test_shamir(void)
{
    uint8_t secret[32], shares[7 * 32], back[32], xs[7];
    const uint8_t *ys[7];
    for (int i = 0; i < 32; i++) secret[i] = (uint8_t)(i * 37 + 5);
    CU_ASSERT_FATAL(fmq_shamir_split(secret, 32, 7, 4, shares) == 0);
    for (int start = 0; start < 4; start++) { /* any 4 of the 7 */
        for (int j = 0; j < 4; j++) {
            int i = (start + 2 * j) % 7;
            xs[j] = (uint8_t)(i + 1);
            ys[j] = shares + i * 32;
        }
        CU_ASSERT(fmq_shamir_combine(xs, ys, 4, 32, back) == 0);
        CU_ASSERT(memcmp(back, secret, 32) == 0);
    }
    CU_ASSERT(fmq_shamir_combine(xs, ys, 3, 32, back) == 0); /* three are not enough */
    CU_ASSERT(memcmp(back, secret, 32) != 0);
    xs[1] = xs[0];
    CU_ASSERT_EQUAL(fmq_shamir_combine(xs, ys, 4, 32, back), FMQ_EINVAL);
    CU_ASSERT_EQUAL(fmq_shamir_split(secret, 32, 300, 4, shares), FMQ_EINVAL);
}

static int last_unrecovered; /* the server's after the last run_round */

/* One round with n agents, the agents in drop[] leaving after they shared (before masking).
 * tamper 1: one share of agent 1's (for agent 0) is corrupted; 2: all of agent 1's are; 3: agent
 * 0 answers with every entry at agent 1's x-coordinate (a repeated x). */
static int run_round(int n, int t, uint32_t dim, const int *drop, int ndrop, int tamper,
                     double *err_max, int *count)
{
    struct fmq_secagg_params p = {n, t, dim, 16, 4.0f, {1, 2, 3}};
    struct fmq_secagg_client *c = calloc((size_t)n, sizeof *c);
    struct fmq_secagg_server s;
    uint8_t *pubs = calloc((size_t)n, 64), *sh = calloc((size_t)n * n, FMQ_SECAGG_CIPHER),
            *in = calloc((size_t)n, FMQ_SECAGG_CIPHER), *surv = calloc((size_t)n, 1),
            *ans = calloc((size_t)n, 1 + FMQ_SECAGG_KEY);
    float *x = malloc((size_t)n * dim * sizeof *x);
    uint32_t *y = malloc(dim * sizeof *y);
    double *sum = malloc(dim * sizeof *sum), *plain = calloc(dim, sizeof *plain);
    struct fmq_rng r;
    int rc = 0, same = 0;
    fmq_rng_seed(&r, 7, 1);
    for (int u = 0; u < n; u++)
        CU_ASSERT_FATAL(fmq_secagg_client_init(&c[u], &p, u, pubs + 64 * u) == 0);
    for (int u = 0; u < n; u++)
        CU_ASSERT_FATAL(
            fmq_secagg_client_share(&c[u], pubs, sh + (size_t)u * n * FMQ_SECAGG_CIPHER) == 0);
    for (int v = 0; v < (tamper == 2 ? n : tamper ? 1 : 0); v++) /* agent 1's share for v */
        if (v != 1) sh[((size_t)1 * n + v) * FMQ_SECAGG_CIPHER + 5] ^= 1;
    CU_ASSERT_FATAL(fmq_secagg_server_init(&s, &p, pubs) == 0);
    for (int u = 0; u < n; u++) {
        int gone = 0;
        for (int k = 0; k < ndrop; k++) gone |= drop[k] == u;
        for (int v = 0; v < n; v++) /* the server routes v's share for u */
            memcpy(in + (size_t)v * FMQ_SECAGG_CIPHER, sh + ((size_t)v * n + u) * FMQ_SECAGG_CIPHER,
                   FMQ_SECAGG_CIPHER);
        for (uint32_t i = 0; i < dim; i++)
            x[(size_t)u * dim + i] = (float)(2 * fmq_rng_uniform(&r) - 1);
        if (gone) continue;
        rc = fmq_secagg_client_mask(&c[u], in, x + (size_t)u * dim, y);
        if (rc) goto out;
        for (uint32_t i = 0; i < dim; i++) {
            plain[i] += x[(size_t)u * dim + i];
            same += y[i] == (uint32_t)(int32_t)lrint(ldexp(x[(size_t)u * dim + i], 16));
        }
        CU_ASSERT(fmq_secagg_server_add(&s, u, y) == 0);
        surv[u] = 1;
    }
    CU_ASSERT(same < 3); /* a masked vector is uniform: it hides every coordinate */
    for (int u = 0; u < n; u++)
        if (surv[u]) {
            CU_ASSERT(fmq_secagg_client_unmask(&c[u], surv, ans) == 0);
            for (int v = 0; tamper == 3 && u == 0 && v < n; v++) ans[v * (1 + FMQ_SECAGG_KEY)] = 2;
            CU_ASSERT(fmq_secagg_server_answer(&s, u, ans) == 0);
        }
    rc = fmq_secagg_server_sum(&s, sum, count);
    last_unrecovered = s.unrecovered;
    *err_max = 0;
    for (uint32_t i = 0; rc == 0 && i < dim; i++)
        if (fabs(sum[i] - plain[i]) > *err_max) *err_max = fabs(sum[i] - plain[i]);
out:
    fmq_secagg_server_free(&s);
    for (int u = 0; u < n; u++) fmq_secagg_client_free(&c[u]);
    free(c), free(pubs), free(sh), free(in), free(surv), free(ans), free(x), free(y), free(sum);
    free(plain);
    return rc;
}

static void test_secagg_rounds(void)
{
    static const int drop2[] = {2, 5}, drop4[] = {0, 1, 3, 6};
    double err;
    int count;
    struct fmq_secagg_params bad = {200, 2, 10, 24, 4.0f, {0}};
    CU_ASSERT_EQUAL(fmq_secagg_params_check(&bad), FMQ_EINVAL); /* the sum would overflow */
    CU_ASSERT(run_round(7, 4, 500, NULL, 0, 0, &err, &count) == 0);
    CU_ASSERT_EQUAL(count, 7);
    CU_ASSERT(err <= 7 * ldexp(1, -17) + 1e-12); /* rounding only: half a step per agent */
    CU_ASSERT(run_round(7, 4, 500, drop2, 2, 0, &err, &count) == 0); /* dropped after sharing */
    CU_ASSERT_EQUAL(count, 5);
    CU_ASSERT(err <= 5 * ldexp(1, -17) + 1e-12);
    CU_ASSERT_EQUAL(run_round(7, 4, 50, drop4, 4, 0, &err, &count), FMQ_ERANGE); /* 3 < t */
    { /* keys: real ones pass, a low-order point (here 0) is refused */
        struct fmq_secagg_client k;
        uint8_t pub[64];
        CU_ASSERT_FATAL(fmq_secagg_client_keys(&k, pub) == 0);
        CU_ASSERT_EQUAL(fmq_secagg_pub_check(pub), 0);
        memset(pub + 32, 0, 32);
        CU_ASSERT_EQUAL(fmq_secagg_pub_check(pub), FMQ_EINVAL);
        fmq_secagg_client_free(&k);
    }
    /* a corrupted share: its recipient still masks with the sender, the sum stays exact */
    CU_ASSERT(run_round(5, 3, 50, NULL, 0, 1, &err, &count) == 0);
    CU_ASSERT(count == 5 && err <= 5 * ldexp(1, -17) + 1e-12);
    /* a forger of all its shares that drops out: its mask key cannot be recovered, and the
     * server names it */
    {
        static const int drop1[] = {1};
        CU_ASSERT_EQUAL(run_round(5, 3, 50, drop1, 1, 2, &err, &count), FMQ_ERANGE);
        CU_ASSERT_EQUAL(last_unrecovered, 1);
        CU_ASSERT(run_round(5, 3, 50, drop1, 1, 0, &err, &count) == 0); /* honest, it can be */
        /* a lying answer (a repeated x): dropped by the server, the others unmask, exactly */
        CU_ASSERT(run_round(5, 3, 50, drop1, 1, 3, &err, &count) == 0);
        CU_ASSERT(count == 4 && err <= 4 * ldexp(1, -17) + 1e-12);
        CU_ASSERT_EQUAL(last_unrecovered, -1);
    }
}

int init_secagg_tests(void)
{
    static const struct fmq_test t[] = {{"shamir over GF(2^8)", test_shamir},
                                        {"rounds, dropouts, tampering", test_secagg_rounds},
                                        {NULL, NULL}};
    return fmq_add_suite("secagg", t);
}
