/* Secure aggregation's cost (core/include/fedmq/secagg.h): one whole round in one process for
 * 10 and 100 agents, with the demo's MLP update (3,137 values) and GIoT's (32,160), no dropout
 * and 10% of the agents dropping out after sharing. Prints, per agent, the bytes it sends and
 * receives beyond the plain update (keys, encrypted shares, the survivor list, its unmasking
 * answer; a masked update is as long as a dense-f32 one) and the CPU milliseconds of each of its
 * steps, and the server's milliseconds to unmask; then checks the sum against the plain one.
 * Usage: build/bench/fmq_bench_secagg [--agents 10,100] [--dims 3137,32160]   (one thread) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fedmq/common.h"
#include "fedmq/secagg.h"

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int one(int n, uint32_t dim, int ndrop)
{
    struct fmq_secagg_params p = {n, n / 2 + 1, dim, 16, 4.0f, {15}};
    struct fmq_secagg_client *c = calloc((size_t)n, sizeof *c);
    struct fmq_secagg_server s;
    uint8_t *pubs = calloc((size_t)n, 64), *sh = calloc((size_t)n * n, FMQ_SECAGG_CIPHER),
            *in = calloc((size_t)n, FMQ_SECAGG_CIPHER), *surv = calloc((size_t)n, 1),
            *ans = calloc((size_t)n, 1 + FMQ_SECAGG_KEY);
    float *x = malloc(dim * sizeof *x);
    uint32_t *y = malloc(dim * sizeof *y);
    double *sum = malloc(dim * sizeof *sum), *plain = calloc(dim, sizeof *plain), err = 0, t0;
    double ms_keys = 0, ms_share = 0, ms_mask = 0, ms_unmask = 0, ms_server;
    struct fmq_rng r;
    int rc = 1, count = 0, alive = n - ndrop;
    size_t up, down;
    if (!c || !pubs || !sh || !in || !surv || !ans || !x || !y || !sum || !plain) goto out;
    fmq_rng_seed(&r, 1, 2);
    for (int u = 0; u < n; u++) {
        t0 = cpu_ms();
        if (fmq_secagg_client_init(&c[u], &p, u, pubs + 64 * u)) goto out;
        ms_keys += cpu_ms() - t0;
    }
    for (int u = 0; u < n; u++) {
        t0 = cpu_ms();
        if (fmq_secagg_client_share(&c[u], pubs, sh + (size_t)u * n * FMQ_SECAGG_CIPHER)) goto out;
        ms_share += cpu_ms() - t0;
    }
    if (fmq_secagg_server_init(&s, &p, pubs)) goto out;
    for (int u = 0; u < n; u++) {
        for (int v = 0; v < n; v++)
            memcpy(in + (size_t)v * FMQ_SECAGG_CIPHER, sh + ((size_t)v * n + u) * FMQ_SECAGG_CIPHER,
                   FMQ_SECAGG_CIPHER);
        for (uint32_t i = 0; i < dim; i++) x[i] = (float)(0.01 * fmq_rng_normal(&r));
        if (u < ndrop) continue; /* the first ndrop leave after sharing */
        t0 = cpu_ms();
        if (fmq_secagg_client_mask(&c[u], in, x, y)) goto out;
        ms_mask += cpu_ms() - t0;
        for (uint32_t i = 0; i < dim; i++) plain[i] += x[i];
        if (fmq_secagg_server_add(&s, u, y)) goto out;
        surv[u] = 1;
    }
    for (int u = ndrop; u < n; u++) {
        t0 = cpu_ms();
        fmq_secagg_client_unmask(&c[u], surv, ans);
        ms_unmask += cpu_ms() - t0;
        if (fmq_secagg_server_answer(&s, u, ans)) goto out;
    }
    t0 = cpu_ms();
    if (fmq_secagg_server_sum(&s, sum, &count)) goto out;
    ms_server = cpu_ms() - t0;
    for (uint32_t i = 0; i < dim; i++)
        if (fabs(sum[i] - plain[i]) > err) err = fabs(sum[i] - plain[i]);
    /* per agent, beyond its plain update: up = its 64 bytes of keys, its n - 1 encrypted
     * shares, its answer; down = every agent's keys, the n - 1 shares for it, the survivor list */
    up = 64 + (size_t)(n - 1) * FMQ_SECAGG_CIPHER + (size_t)n * (1 + FMQ_SECAGG_KEY);
    down = (size_t)n * 64 + (size_t)(n - 1) * FMQ_SECAGG_CIPHER + (size_t)n;
    printf("%7d %8u %6d %10zu %10zu %9.2f %9.2f %9.2f %9.3f %10.1f %6d %9.2g\n", n, dim, ndrop, up,
           down, ms_keys / n, ms_share / n, ms_mask / alive, ms_unmask / alive, ms_server, count,
           err);
    fmq_secagg_server_free(&s);
    rc = count == alive && err < alive * ldexp(1, -16) ? 0 : 1;
out:
    for (int u = 0; u < n; u++) fmq_secagg_client_free(&c[u]);
    free(c), free(pubs), free(sh), free(in), free(surv), free(ans), free(x), free(y), free(sum);
    free(plain);
    if (rc) fprintf(stderr, "secagg: the round for %d agents, dim %u failed\n", n, dim);
    return rc;
}

int main(int argc, char **argv)
{
    int agents[8] = {10, 100}, na = 2, rc = 0;
    uint32_t dims[8] = {3137, 32160};
    int nd = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        int *cnt = !strcmp(argv[i], "--agents") ? &na : !strcmp(argv[i], "--dims") ? &nd : NULL;
        char *tok, *save = NULL;
        if (!cnt) {
            fprintf(stderr, "usage: fmq_bench_secagg [--agents 10,100] [--dims 3137,32160]\n");
            return 2;
        }
        *cnt = 0;
        for (tok = strtok_r(argv[i + 1], ",", &save); tok && *cnt < 8;
             tok = strtok_r(NULL, ",", &save)) {
            if (cnt == &na)
                agents[na++] = atoi(tok);
            else
                dims[nd++] = (uint32_t)atoi(tok);
        }
    }
    printf("secure aggregation, one round, threshold n/2 + 1, 16 fractional bits; per agent: bytes "
           "beyond its update, CPU ms of each step; server: ms to unmask\n");
    printf("%7s %8s %6s %10s %10s %9s %9s %9s %9s %10s %6s %9s\n", "agents", "dim", "drop", "up B",
           "down B", "keys ms", "share ms", "mask ms", "unmask ms", "server ms", "summed",
           "max err");
    for (int a = 0; a < na; a++)
        for (int d = 0; d < nd; d++) {
            rc |= one(agents[a], dims[d], 0);
            rc |= one(agents[a], dims[d], agents[a] / 10);
        }
    return rc;
}
