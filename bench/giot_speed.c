/* bench/giot_speed: GIoT training throughput on one thread: forward, backward and an AdamW step
 * on random token windows, for a fixed config. Prints tokens/s. bench/giot_vs_torch.py runs this
 * next to PyTorch on the same config and prints the ratio. Without arguments it also prints the
 * agent's live scoring rate (one flow's window per forward pass, batch 1).
 * Usage: fmq_bench_giot_speed [B T C L NH V steps] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedmq/gpt.h"
#include "fedmq/model.h"

int main(int argc, char **argv)
{
    int B = argc > 1 ? atoi(argv[1]) : 16, T = argc > 2 ? atoi(argv[2]) : 41;
    int C = argc > 3 ? atoi(argv[3]) : 32, L = argc > 4 ? atoi(argv[4]) : 2;
    int NH = argc > 5 ? atoi(argv[5]) : 4, V = argc > 6 ? atoi(argv[6]) : 168;
    long steps = argc > 7 ? atol(argv[7]) : 50;
    struct fmq_gpt_config c = {V, T, L, NH, C, 0};
    struct fmq_gpt m;
    struct fmq_gpt_acts a;
    struct fmq_optim o;
    struct fmq_rng r;
    int *in = malloc((size_t)B * T * sizeof(int)), *tg = malloc((size_t)B * T * sizeof(int));
    double t0, s;

    if (fmq_gpt_init(&m, &c) || fmq_gpt_acts_init(&a, &m, B, T) ||
        fmq_optim_init(&o, FMQ_OPT_ADAMW, m.nparams, 1e-3f))
        return 1;
    fmq_gpt_init_params(&m, 1);
    fmq_rng_seed(&r, 1, 1);
    for (int i = 0; i < B * T; i++)
        in[i] = (int)fmq_rng_below(&r, (uint32_t)V), tg[i] = (int)fmq_rng_below(&r, (uint32_t)V);
    for (int w = 0; w < 3; w++) { /* warm up */
        fmq_gpt_forward(&m, &a, in, tg, NULL, T, 1, 0);
        memset(a.grads, 0, m.nparams * sizeof(float));
        fmq_gpt_backward(&m, &a);
        fmq_optim_step(&o, m.params, a.grads);
    }
    t0 = fmq_mono();
    for (long i = 0; i < steps; i++) {
        fmq_gpt_forward(&m, &a, in, tg, NULL, T, 1, 0);
        memset(a.grads, 0, m.nparams * sizeof(float));
        fmq_gpt_backward(&m, &a);
        fmq_optim_step(&o, m.params, a.grads);
    }
    s = fmq_mono() - t0;
    printf("fedmq C: B %d T %d C %d L %d NH %d V %d (%zu parameters): %.0f tokens/s\n", B, T, C, L,
           NH, V, m.nparams, (double)steps * B * T / s);
    if (argc <= 1) { /* the agent's live path: one window per flow, batch 1, tail logits only */
        struct fmq_gpt_acts a1;
        long n = 3000;
        if (fmq_gpt_acts_init(&a1, &m, 1, T)) return 1;
        a1.lm_tail = 11;
        t0 = fmq_mono();
        for (long i = 0; i < n; i++)
            fmq_gpt_forward(&m, &a1, in + (i % B) * T, NULL, NULL, T, 1, 0);
        s = fmq_mono() - t0;
        printf("fedmq C: live scoring, batch 1, T %d: %.0f flows/s (%.1f us per flow)\n", T,
               (double)n / s, 1e6 * s / (double)n);
        fmq_gpt_acts_free(&a1);
    }
    return 0;
}
