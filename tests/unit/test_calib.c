/* The calibration state machine and the fleet rule (calib.h): the fleet default applies before a
 * site has calibrated; a flood during warm-up is not learnt as normal beyond the fleet's cap;
 * recalibration follows a drift that lasts hours but not a burst of minutes; flows labelled
 * malicious or flagged by another channel are left out; a quiet site tightens; a new model keeps
 * each threshold's place; a site whose tail is heavier than the fleet's is followed past the
 * novelty cap; a confident quantile keeps a site within its budget at 95% of sites; a flow
 * counts in some channel's budget (calib_exclude in_use); the rule pools the sites' sketches
 * and a liar cannot open the cap. */
#include <math.h>
#include <string.h>

#include "fedmq/calib.h"
#include "fedmq/common.h"
#include "fedmq/flow.h"
#include "test_util.h"

static const float NO = NAN;

static struct fmq_calib_cfg cfg(void)
{
    struct fmq_calib_cfg c;
    fmq_calib_cfg_default(&c);
    c.budget = 0.01;
    c.min_flows = 200;
    c.min_span = 300;
    c.window = 2000;
    c.every = 100;
    return c;
}

/* A one-channel (novelty) rule: fleet threshold thr, cap. */
static struct fmq_rule nov_rule(float thr, float cap)
{
    struct fmq_rule r;
    memset(&r, 0, sizeof r);
    r.channels = FMQ_CH_BIT(FMQ_CH_NOV);
    r.budget = 0.01f;
    r.thr[FMQ_CH_NOV] = thr;
    r.cap[FMQ_CH_NOV] = cap;
    r.sites = 5;
    return r;
}

/* Pushes one novelty score at time ts; returns whether it alerted. */
static int push(struct fmq_calib *c, uint32_t slot, double ts, float nov, int label)
{
    float s[FMQ_NCH] = {NO, nov};
    struct fmq_verdict v;
    fmq_calib_verdict(c, s, &v);
    fmq_calib_push(c, slot, ts, s, label);
    return v.alert;
}

static void test_fleet_default_first(void)
{
    struct fmq_calib_cfg cf = cfg();
    struct fmq_calib c;
    struct fmq_rule r = nov_rule(10, 20);
    struct fmq_rng g;
    struct fmq_verdict v;
    float s[FMQ_NCH] = {NO, 12};
    CU_ASSERT_FATAL(fmq_calib_init(&c, &cf) == 0);
    fmq_calib_set_model(&c, FMQ_CH_BIT(FMQ_CH_NOV), &r);
    fmq_calib_verdict(&c, s, &v);
    CU_ASSERT_EQUAL(v.state, FMQ_CALIB_LEARNING);
    CU_ASSERT_EQUAL(v.alert, 0); /* 12: unusual for the fleet, not beyond its cap of 20 */
    s[FMQ_CH_NOV] = 21;
    fmq_calib_verdict(&c, s, &v);
    CU_ASSERT_EQUAL(v.alert, 1); /* beyond every benign site: alerts from the first flow */
    CU_ASSERT_EQUAL(v.why, FMQ_CH_BIT(FMQ_CH_NOV));
    fmq_rng_seed(&g, 7, 1);
    /* 300 flows in 100 s: enough flows, not enough time: still the fleet's threshold */
    for (int i = 0; i < 300; i++)
        push(&c, (uint32_t)i, i / 3.0, (float)(4 + fmq_rng_normal(&g)), -1);
    CU_ASSERT_EQUAL(c.state, FMQ_CALIB_LEARNING);
    CU_ASSERT_EQUAL(c.thr[FMQ_CH_NOV], 20.0f);
    for (int i = 300; i < 600; i++) push(&c, (uint32_t)i, i, (float)(4 + fmq_rng_normal(&g)), -1);
    CU_ASSERT_EQUAL(c.state, FMQ_CALIB_CALIBRATED);
    /* a quiet site tightens to its own 1% quantile (4 + 2.33 sigma), below the fleet's 10 */
    CU_ASSERT(c.thr[FMQ_CH_NOV] > 5.5f && c.thr[FMQ_CH_NOV] < 8.0f);
    /* without a fleet rule a novelty score cannot alert before calibration, and the static
     * supervised threshold applies */
    fmq_calib_free(&c);
    CU_ASSERT_FATAL(fmq_calib_init(&c, &cf) == 0);
    fmq_calib_set_model(&c, FMQ_CH_BIT(FMQ_CH_NOV) | FMQ_CH_BIT(FMQ_CH_SUP), NULL);
    s[FMQ_CH_SUP] = 0.5f, s[FMQ_CH_NOV] = 1e6f;
    fmq_calib_verdict(&c, s, &v);
    CU_ASSERT_EQUAL(v.why, FMQ_CH_BIT(FMQ_CH_SUP));
    CU_ASSERT(isinf(v.thr[FMQ_CH_NOV]));
    fmq_calib_free(&c);
}

/* 80% of a site's traffic from its first minute is an attack scoring 30 (benign: about 5). With
 * the fleet's cap at 20 the attack stays flagged; with no fleet rule it becomes "normal". */
static void test_flood_not_learnt(void)
{
    struct fmq_calib_cfg cf = cfg();
    struct fmq_calib c;
    struct fmq_rule r = nov_rule(10, 20);
    struct fmq_rng g;
    int caught[2] = {0, 0}, attacks[2] = {0, 0}, fp = 0, benign = 0;
    for (int ruled = 1; ruled >= 0; ruled--) {
        CU_ASSERT_FATAL(fmq_calib_init(&c, &cf) == 0);
        fmq_calib_set_model(&c, FMQ_CH_BIT(FMQ_CH_NOV), ruled ? &r : NULL);
        fmq_rng_seed(&g, 3, 1);
        for (int i = 0; i < 6000; i++) {
            int attack = fmq_rng_uniform(&g) < 0.8;
            float s = attack ? (float)(30 + fmq_rng_normal(&g)) : (float)(5 + fmq_rng_normal(&g));
            int a = push(&c, (uint32_t)i, 10.0 * i, s, -1); /* unlabelled, 17 h of traffic */
            if (i < 1000) continue;                         /* after warm-up */
            attacks[ruled] += attack;
            caught[ruled] += attack && a;
            if (ruled && !attack) benign++, fp += a;
        }
        CU_ASSERT(c.state != FMQ_CALIB_LEARNING);
        if (ruled) CU_ASSERT(c.thr[FMQ_CH_NOV] <= 20.0f);
        fmq_calib_free(&c);
    }
    CU_ASSERT((double)caught[1] / attacks[1] > 0.99);
    CU_ASSERT((double)caught[0] / attacks[0] < 0.05); /* the mechanism is what holds it */
    CU_ASSERT((double)fp / benign < 0.01);
}

/* The site's normal traffic drifts from 5 to 12 over 20 hours: the threshold follows and the
 * alert rate stays near the budget. A burst of 2,000 flows at 25 within two minutes moves it
 * by less than a tenth of the way. */
static void test_drift_and_burst(void)
{
    struct fmq_calib_cfg cf = cfg();
    struct fmq_calib c;
    struct fmq_rule r = nov_rule(10, 40);
    struct fmq_rng g;
    int late = 0, late_fp = 0, burst_alerts = 0;
    double t = 0;
    float before;
    CU_ASSERT_FATAL(fmq_calib_init(&c, &cf) == 0);
    fmq_calib_set_model(&c, FMQ_CH_BIT(FMQ_CH_NOV), &r);
    fmq_rng_seed(&g, 11, 1);
    for (int i = 0; i < 12000; i++, t += 6.0) { /* 20 h */
        float mu = (float)(5 + 7.0 * i / 12000), s = (float)(mu + fmq_rng_normal(&g));
        int a = push(&c, (uint32_t)i, t, s, -1);
        if (i >= 10800) late++, late_fp += a;
    }
    CU_ASSERT(c.thr[FMQ_CH_NOV] > 13.0f);
    CU_ASSERT((double)late_fp / late < 0.03);
    before = c.thr[FMQ_CH_NOV];
    for (int i = 0; i < 2000; i++, t += 0.06) /* two minutes */
        burst_alerts += push(&c, (uint32_t)(12000 + i), t, (float)(25 + fmq_rng_normal(&g)), -1);
    CU_ASSERT(c.thr[FMQ_CH_NOV] - before < 0.1f * (25.0f - before));
    CU_ASSERT(burst_alerts > 1900);
    fmq_calib_free(&c);
}

/* A site whose typical flow is normal for the fleet but whose tail is heavier than every benign
 * site's (a quarter of its flows between 15 and 45 against a fleet cap of 20, as a desktop among
 * IoT devices): with novelty_beyond_cap its novelty threshold passes the cap within hours and the
 * alert rate falls to the budget; without it the site alerts on about a fifth of its traffic for
 * good. The 80% flood of test_flood_not_learnt keeps the cap either way (its median is not
 * normal for the fleet). */
static void test_heavy_tail_followed(void)
{
    struct fmq_calib_cfg cf = cfg();
    struct fmq_calib c;
    struct fmq_rule r = nov_rule(10, 20);
    struct fmq_rng g;
    double late_rate[2];
    for (int beyond = 0; beyond <= 1; beyond++) {
        int late = 0, late_fp = 0;
        cf.novelty_beyond_cap = beyond;
        CU_ASSERT_FATAL(fmq_calib_init(&c, &cf) == 0);
        fmq_calib_set_model(&c, FMQ_CH_BIT(FMQ_CH_NOV), &r);
        fmq_rng_seed(&g, 13, 1);
        for (int i = 0; i < 12000; i++) { /* 20 h, unlabelled and all of it benign */
            float s = fmq_rng_uniform(&g) < 0.25 ? (float)(15 + 30 * fmq_rng_uniform(&g))
                                                 : (float)(5 + fmq_rng_normal(&g));
            int a = push(&c, (uint32_t)i, 6.0 * i, s, -1);
            if (i >= 6000) late++, late_fp += a; /* the last 10 h */
        }
        late_rate[beyond] = (double)late_fp / late;
        if (beyond) CU_ASSERT(c.thr[FMQ_CH_NOV] > 40.0f);
        if (!beyond) CU_ASSERT_EQUAL(c.thr[FMQ_CH_NOV], 20.0f);
        fmq_calib_free(&c);
    }
    CU_ASSERT(late_rate[0] > 0.15);
    printf(" [late alert rate %.4f without, %.4f with] ", late_rate[0], late_rate[1]);
    CU_ASSERT(late_rate[1] < 0.015); /* the budget, 1%, and the window quantile's noise */
}

/* Flows labelled malicious, and flows the other channel flags at the fleet rule, are not
 * normal traffic to calibrate on. */
static void test_eligibility(void)
{
    struct fmq_calib_cfg cf = cfg();
    struct fmq_calib c;
    struct fmq_rule r = nov_rule(10, 40);
    struct fmq_rng g;
    r.channels |= FMQ_CH_BIT(FMQ_CH_SUP);
    r.thr[FMQ_CH_SUP] = 0, r.cap[FMQ_CH_SUP] = 2;
    CU_ASSERT_FATAL(fmq_calib_init(&c, &cf) == 0);
    fmq_calib_set_model(&c, FMQ_CH_BIT(FMQ_CH_NOV) | FMQ_CH_BIT(FMQ_CH_SUP), &r);
    fmq_rng_seed(&g, 5, 1);
    for (int i = 0; i < 2000; i++) {
        float s[FMQ_NCH];
        int kind = i % 10; /* 0-1: labelled attacks, 2-3: flagged by sup, the rest normal */
        s[FMQ_CH_SUP] = kind == 2 || kind == 3 ? 5.0f : (float)(-5 + 0.1 * fmq_rng_normal(&g));
        s[FMQ_CH_NOV] = kind < 4 ? 35.0f : (float)(5 + fmq_rng_normal(&g));
        fmq_calib_push(&c, (uint32_t)i, 5.0 * i, s, kind < 2 ? FMQ_LABEL_MALICIOUS : -1);
    }
    CU_ASSERT_EQUAL(c.state, FMQ_CALIB_CALIBRATED);
    /* 40% of the window scores 35, but none of it is eligible: the threshold is the normal
     * flows' 0.5% quantile, about 5 + 2.6 */
    CU_ASSERT(c.thr[FMQ_CH_NOV] > 6.5f && c.thr[FMQ_CH_NOV] < 9.5f);
    fmq_calib_free(&c);
}

/* calib_confidence: over 300 sites of N(0, 1) novelty scores, each calibrated once on a window
 * of 2,000 flows, the share of future normal flows above the threshold (exact, from the normal
 * tail) passes the 1% budget at about 5% of the sites with confidence 0.95 (Wilks: the 13th
 * largest of 2,000; measured 9 of 300), and at about half of them with the plain 99% quantile
 * (157 of 300). */
static void test_confidence(void)
{
    struct fmq_calib_cfg cf = cfg();
    struct fmq_rule r = nov_rule(10, 20);
    struct fmq_rng g;
    int over[2] = {0, 0};
    const int sites = 300;
    cf.min_flows = cf.window = cf.every = 2000; /* one calibration, on exactly the full window */
    fmq_rng_seed(&g, 23, 1);
    for (int t = 0; t < sites; t++)
        for (int k = 0; k < 2; k++) {
            struct fmq_calib c;
            double tail;
            cf.confidence = k ? 0.95 : 0;
            CU_ASSERT_FATAL(fmq_calib_init(&c, &cf) == 0);
            fmq_calib_set_model(&c, FMQ_CH_BIT(FMQ_CH_NOV), &r);
            for (int i = 0; i < 2000; i++)
                push(&c, (uint32_t)i, 1.0 * i, (float)fmq_rng_normal(&g), -1);
            CU_ASSERT_EQUAL(c.state, FMQ_CALIB_CALIBRATED);
            tail = 0.5 * erfc(c.thr[FMQ_CH_NOV] / sqrt(2.0));
            over[k] += tail > 0.01;
            fmq_calib_free(&c);
        }
    CU_ASSERT(over[1] <= sites * 0.09); /* 5% expected: 15 of 300, sd 3.8 */
    CU_ASSERT(over[0] >= sites * 0.35); /* about half */
}

/* calib_exclude: a desktop-like site, 15% of its flows far above the fleet's novelty threshold
 * (but normal here: its own novelty threshold is above them) with supervised scores near 0,
 * the rest low on both. Leaving those flows out of the supervised quantile because the fleet's
 * novelty threshold flags them (fleet) puts them in no channel's budget: the supervised
 * threshold, set on the rest, alerts on all of them. With in_use they count where the site's
 * own novelty threshold lets them through, and the window stays within the 1% budget. */
static void test_exclusion_in_use(void)
{
    struct fmq_calib_cfg cf = cfg();
    struct fmq_rule r = nov_rule(84, 200);
    struct fmq_rng g;
    double rate[2];
    r.channels |= FMQ_CH_BIT(FMQ_CH_SUP);
    r.thr[FMQ_CH_SUP] = 10, r.cap[FMQ_CH_SUP] = 15;
    for (int k = 0; k <= 1; k++) {
        struct fmq_calib c;
        size_t above = 0;
        cf.exclude_in_use = k;
        CU_ASSERT_FATAL(fmq_calib_init(&c, &cf) == 0);
        fmq_calib_set_model(&c, FMQ_CH_BIT(FMQ_CH_NOV) | FMQ_CH_BIT(FMQ_CH_SUP), &r);
        fmq_rng_seed(&g, 29, 1);
        for (int i = 0; i < 6000; i++) {
            int heavy = fmq_rng_uniform(&g) < 0.15;
            float s[FMQ_NCH];
            s[FMQ_CH_NOV] =
                (float)(heavy ? 110 + 5 * fmq_rng_normal(&g) : 20 + 3 * fmq_rng_normal(&g));
            s[FMQ_CH_SUP] = (float)(heavy ? fmq_rng_normal(&g) : -20 + 3 * fmq_rng_normal(&g));
            fmq_calib_push(&c, (uint32_t)i, 5.0 * i, s, -1);
        }
        CU_ASSERT(c.thr[FMQ_CH_NOV] > 110); /* its own quantile, above the fleet's 84 */
        for (size_t i = 0; i < c.n; i++) {
            const float *s = c.score + i * FMQ_NCH;
            above += s[FMQ_CH_SUP] > c.thr[FMQ_CH_SUP] || s[FMQ_CH_NOV] > c.thr[FMQ_CH_NOV];
        }
        rate[k] = (double)above / (double)c.n;
        fmq_calib_free(&c);
    }
    CU_ASSERT(rate[0] > 0.05); /* the heavy flows alert on the supervised channel */
    CU_ASSERT(rate[1] <= 0.012);
}

/* A new model that doubles every score: the thresholds keep their place in the window. */
static void test_new_model_keeps_place(void)
{
    struct fmq_calib_cfg cf = cfg();
    struct fmq_calib c;
    struct fmq_rule r = nov_rule(10, 100), r2 = nov_rule(20, 200);
    struct fmq_rng g;
    float before;
    size_t above = 0;
    CU_ASSERT_FATAL(fmq_calib_init(&c, &cf) == 0);
    fmq_calib_set_model(&c, FMQ_CH_BIT(FMQ_CH_NOV), &r);
    fmq_rng_seed(&g, 9, 1);
    for (int i = 0; i < 2000; i++)
        push(&c, (uint32_t)i, 5.0 * i, (float)(5 + fmq_rng_normal(&g)), -1);
    before = c.thr[FMQ_CH_NOV];
    fmq_calib_remember_ranks(&c);
    fmq_calib_set_model(&c, FMQ_CH_BIT(FMQ_CH_NOV), &r2);
    for (size_t i = 0; i < c.n; i++) c.score[i * FMQ_NCH + FMQ_CH_NOV] *= 2;
    fmq_calib_recompute(&c, 1);
    CU_ASSERT_DOUBLE_EQUAL(c.thr[FMQ_CH_NOV], 2 * before, 0.05 * before);
    for (size_t i = 0; i < c.n; i++) above += c.score[i * FMQ_NCH + FMQ_CH_NOV] > c.thr[FMQ_CH_NOV];
    CU_ASSERT(above >= 12 && above <= 28); /* still about 1% of the window */
    fmq_calib_free(&c);
}

/* Two channels whose tails are the same flows (sup = nov - 10, one ordering): the Bonferroni
 * split leaves half the budget unused (0.5% of the window alerts); calib_union gives each
 * channel the whole budget, as the union then is, and 1% alerts. */
static void test_union_uses_budget(void)
{
    struct fmq_calib_cfg cf = cfg();
    struct fmq_calib c;
    struct fmq_rule r = nov_rule(100, 200);
    struct fmq_rng g;
    double rate[2];
    r.channels |= FMQ_CH_BIT(FMQ_CH_SUP);
    r.thr[FMQ_CH_SUP] = 100, r.cap[FMQ_CH_SUP] = 200;
    cf.confidence = 0; /* the plain quantiles: the rates below are their shares */
    for (int un = 0; un <= 1; un++) {
        size_t above = 0;
        cf.union_levels = un;
        CU_ASSERT_FATAL(fmq_calib_init(&c, &cf) == 0);
        fmq_calib_set_model(&c, FMQ_CH_BIT(FMQ_CH_NOV) | FMQ_CH_BIT(FMQ_CH_SUP), &r);
        fmq_rng_seed(&g, 17, 1);
        for (int i = 0; i < 2000; i++) {
            float s[FMQ_NCH];
            s[FMQ_CH_NOV] = (float)(5 + fmq_rng_normal(&g));
            s[FMQ_CH_SUP] = s[FMQ_CH_NOV] - 10;
            fmq_calib_push(&c, (uint32_t)i, 5.0 * i, s, -1);
        }
        CU_ASSERT_EQUAL(c.state, FMQ_CALIB_CALIBRATED);
        for (size_t i = 0; i < c.n; i++) {
            const float *s = c.score + i * FMQ_NCH;
            above += s[FMQ_CH_SUP] > c.thr[FMQ_CH_SUP] || s[FMQ_CH_NOV] > c.thr[FMQ_CH_NOV];
        }
        rate[un] = (double)above / (double)c.n;
        fmq_calib_free(&c);
    }
    CU_ASSERT_DOUBLE_EQUAL(rate[0], 0.005, 0.0015);
    CU_ASSERT_DOUBLE_EQUAL(rate[1], 0.010, 0.0015);
    /* independent channels: the union of two 0.5% tails is already about 1%, so calib_union
     * leaves the split where it is */
    cf.union_levels = 1;
    CU_ASSERT_FATAL(fmq_calib_init(&c, &cf) == 0);
    fmq_calib_set_model(&c, FMQ_CH_BIT(FMQ_CH_NOV) | FMQ_CH_BIT(FMQ_CH_SUP), &r);
    for (int i = 0; i < 2000; i++) {
        float s[FMQ_NCH] = {(float)(-5 + fmq_rng_normal(&g)), (float)(5 + fmq_rng_normal(&g))};
        fmq_calib_push(&c, (uint32_t)i, 5.0 * i, s, -1);
    }
    {
        size_t above = 0;
        for (size_t i = 0; i < c.n; i++) {
            const float *s = c.score + i * FMQ_NCH;
            above += s[FMQ_CH_SUP] > c.thr[FMQ_CH_SUP] || s[FMQ_CH_NOV] > c.thr[FMQ_CH_NOV];
        }
        CU_ASSERT((double)above / (double)c.n <= 0.0115);
    }
    fmq_calib_free(&c);
}

/* A tenth of a site's traffic from its first minute is one repeated flow scoring 12 (its last
 * digits jitter), the rest N(5,1): the window's 99% quantile falls inside that spike. Above the
 * fleet threshold (10) calib_spikes=fleet alerts on all of it, while without the setting the
 * threshold settles inside the spike and a few of its jittered scores alert; below the fleet
 * threshold (15) the spike is normal for the fleet and sits under the threshold either way. */
static void test_spike_above_fleet_alerts(void)
{
    struct fmq_calib_cfg cf = cfg();
    struct fmq_calib c;
    struct fmq_rng g;
    static const struct {
        int spikes;
        float fleet;
        int alerts; /* does the spike alert at the end */
    } k[] = {{FMQ_SPIKE_OFF, 10, 0}, {FMQ_SPIKE_FLEET, 10, 1}, {FMQ_SPIKE_FLEET, 15, 0}};
    for (size_t j = 0; j < sizeof k / sizeof k[0]; j++) {
        struct fmq_rule r = nov_rule(k[j].fleet, 20);
        int late = 0, caught = 0, benign = 0, fp = 0;
        cf.spikes = k[j].spikes;
        CU_ASSERT_FATAL(fmq_calib_init(&c, &cf) == 0);
        fmq_calib_set_model(&c, FMQ_CH_BIT(FMQ_CH_NOV), &r);
        fmq_rng_seed(&g, 19, 1);
        for (int i = 0; i < 6000; i++) {
            int spike = fmq_rng_uniform(&g) < 0.1;
            float s =
                spike ? (float)(12 + 1e-4 * fmq_rng_uniform(&g)) : (float)(5 + fmq_rng_normal(&g));
            int a = push(&c, (uint32_t)i, 10.0 * i, s, -1);
            if (i < 2000) continue;
            if (spike)
                late++, caught += a;
            else
                benign++, fp += a;
        }
        CU_ASSERT(c.state != FMQ_CALIB_LEARNING);
        CU_ASSERT(k[j].alerts ? (double)caught / late > 0.99 : (double)caught / late < 0.2);
        CU_ASSERT((double)fp / benign < 0.01);
        fmq_calib_free(&c);
    }
}

static void sketch_normal(struct fmq_sketch *s, int ch, double mu, double sd, uint32_t n)
{
    static const double z[FMQ_SKETCH_LEVELS] = {0.8416, 1.2816, 2.3263, 2.5758, 3.0902};
    memset(s, 0, sizeof *s);
    s->n = n;
    s->channels = FMQ_CH_BIT(ch);
    for (int j = 0; j < FMQ_SKETCH_LEVELS; j++) s->q[ch][j] = (float)(mu + sd * z[j]);
}

/* Three sites N(0,1), N(0,1), N(4,1) of 1,000 benign flows each: the fleet threshold is the
 * pooled 99.5% quantile (about 6.4), between the sites' own; the cap the largest site's. One
 * liar among ten claiming 10^9 flows at 1,000 moves neither. */
static void test_rule_pools_sites(void)
{
    struct fmq_rule_acc a;
    struct fmq_rule r, r2;
    struct fmq_sketch s;
    CU_ASSERT_FATAL(fmq_rule_acc_init(&a, 64) == 0);
    sketch_normal(&s, FMQ_CH_NOV, 0, 1, 1000);
    fmq_rule_acc_add(&a, &s, 50);
    fmq_rule_acc_add(&a, &s, 50);
    sketch_normal(&s, FMQ_CH_NOV, 4, 1, 1000);
    fmq_rule_acc_add(&a, &s, 50);
    sketch_normal(&s, FMQ_CH_NOV, 9, 1, 10); /* too few flows to count */
    fmq_rule_acc_add(&a, &s, 50);
    fmq_rule_acc_finish(&a, 0.01, 7, &r);
    CU_ASSERT_EQUAL(r.channels, FMQ_CH_BIT(FMQ_CH_NOV));
    CU_ASSERT_EQUAL(r.sites, 3);
    CU_ASSERT_EQUAL(r.version, 7);
    /* one channel: all the budget, the 99% level. Pooled: 1/3 x P(N(4,1) > x) = 0.01 at
     * x = 4 + 1.88; the cap is the largest site's own 99% quantile */
    CU_ASSERT_DOUBLE_EQUAL(r.thr[FMQ_CH_NOV], 5.88, 0.3);
    CU_ASSERT_DOUBLE_EQUAL(r.cap[FMQ_CH_NOV], 4 + 2.3263, 0.01);
    fmq_rule_acc_reset(&a);
    for (int i = 0; i < 9; i++) {
        sketch_normal(&s, FMQ_CH_NOV, 0.1 * i, 1, 1000);
        fmq_rule_acc_add(&a, &s, 50);
    }
    fmq_rule_acc_finish(&a, 0.01, 8, &r);
    sketch_normal(&s, FMQ_CH_NOV, 1000, 1, 1000000000u);
    fmq_rule_acc_add(&a, &s, 50);
    fmq_rule_acc_finish(&a, 0.01, 8, &r2);
    /* the top tenth is set aside: the cap is the largest honest site's quantile, 0.8 + 2.33,
     * and the fleet threshold, which the liar's weight (capped at 3x the median site, still a
     * quarter of the fleet's) would drag to 1000, is held under it */
    CU_ASSERT_DOUBLE_EQUAL(r2.cap[FMQ_CH_NOV], 0.8 + 2.3263, 0.01);
    CU_ASSERT(r2.thr[FMQ_CH_NOV] <= r2.cap[FMQ_CH_NOV]);
    CU_ASSERT(r.thr[FMQ_CH_NOV] < 4.0f);
    fmq_rule_acc_free(&a);
}

static void test_sketch_checks(void)
{
    struct fmq_sketch s;
    float sc[8 * FMQ_NCH];
    int8_t lab[8] = {0, 0, 0, 0, 1, 0, -1, 0};
    float tmp[8];
    for (int i = 0; i < 8; i++) sc[i * FMQ_NCH] = (float)i, sc[i * FMQ_NCH + 1] = NAN;
    fmq_sketch_from(&s, sc, lab, 8, FMQ_CH_BIT(FMQ_CH_SUP), tmp);
    CU_ASSERT_EQUAL(s.n, 6); /* benign only: not the attack, not the unlabelled flow */
    CU_ASSERT_EQUAL(s.channels, FMQ_CH_BIT(FMQ_CH_SUP));
    CU_ASSERT_DOUBLE_EQUAL(s.q[FMQ_CH_SUP][FMQ_SKETCH_LEVELS - 1], 6.99, 0.005);
    CU_ASSERT_EQUAL(fmq_sketch_check(&s), 0);
    s.q[FMQ_CH_SUP][2] = s.q[FMQ_CH_SUP][3] + 1; /* out of order */
    CU_ASSERT_EQUAL(fmq_sketch_check(&s), FMQ_ERANGE);
    s.q[FMQ_CH_SUP][2] = NAN;
    CU_ASSERT_EQUAL(fmq_sketch_check(&s), FMQ_ERANGE);
}

int init_calib_tests(void)
{
    static const struct fmq_test t[] = {
        {"fleet default before calibration", test_fleet_default_first},
        {"a flood during warm-up is not learnt", test_flood_not_learnt},
        {"drift is followed, a burst is not", test_drift_and_burst},
        {"a heavy tail is followed past the cap", test_heavy_tail_followed},
        {"eligibility", test_eligibility},
        {"calib_confidence keeps the budget at most sites", test_confidence},
        {"calib_exclude in_use: every flow in some budget", test_exclusion_in_use},
        {"a new model keeps the place", test_new_model_keeps_place},
        {"calib_union uses the budget", test_union_uses_budget},
        {"calib_spikes: a spike above the fleet alerts", test_spike_above_fleet_alerts},
        {"the rule pools sketches", test_rule_pools_sites},
        {"sketch checks", test_sketch_checks},
        {NULL, NULL}};
    return fmq_add_suite("calib", t);
}
