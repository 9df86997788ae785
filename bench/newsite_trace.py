#!/usr/bin/env python3
"""bench/newsite_trace.py: reads a new site's per-flow trace (fedmq-sim --new-site-trace, as
bench/newsite.sh writes it to OUTPREFIX.trace: index, ts, truth, calibration state, supervised
score and threshold, novelty score and threshold, alert) and prints, for benign and malicious
flows, the quantiles of both scores, the thresholds at the first and last flow, and per
calibration state the flows, false positives and true positives; with --every N, every N-th
flow's state, scores and thresholds (how a threshold moved through the capture).
Usage: bench/newsite_trace.py TRACE [--every N]"""
import argparse


def quantile(v, q):
    """numpy's default (linear) quantile of the sorted list v."""
    pos = q * (len(v) - 1)
    i = int(pos)
    return v[i] if i + 1 >= len(v) else v[i] + (pos - i) * (v[i + 1] - v[i])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--every", type=int, default=0)
    a = ap.parse_args()
    rows = []
    with open(a.trace) as f:
        for line in f:
            k, ts, truth, state, sup, sthr, nov, nthr, alert = line.rstrip("\n").split("\t")
            rows.append((int(k), int(truth), state, float(sup), float(sthr), float(nov),
                         float(nthr), int(alert)))
    levels = (0.01, 0.1, 0.5, 0.9, 0.99, 0.995)
    for name, t in (("benign", 0), ("malicious", 1)):
        sel = [r for r in rows if r[1] == t]
        if not sel:
            continue
        for ch, col in (("novelty", 5), ("supervised", 3)):
            v = sorted(r[col] for r in sel)
            print("%-9s %6d flows, %-10s q%s: %s" % (
                name, len(sel), ch, ",".join("%g" % (100 * q) for q in levels),
                " ".join("%.2f" % quantile(v, q) for q in levels)))
    print("thresholds sup / nov: first %g / %g, last %g / %g" %
          (rows[0][4], rows[0][6], rows[-1][4], rows[-1][6]))
    for s in ("learning", "calibrated", "recalibrating"):
        sel = [r for r in rows if r[2] == s]
        print("%-13s flows %6d, benign %5d (FP %4d), malicious %6d (TP %6d)" % (
            s, len(sel), sum(r[1] == 0 for r in sel), sum(r[1] == 0 and r[7] for r in sel),
            sum(r[1] == 1 for r in sel), sum(r[1] == 1 and r[7] for r in sel)))
    for r in rows[::a.every] if a.every > 0 else ():
        print("%6d truth %d %-13s sup %9.4f thr %9.4f  nov %9.4f thr %9.4f  alert %d" % r)


if __name__ == "__main__":
    main()
