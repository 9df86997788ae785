#!/usr/bin/env python3
"""bench/bytes_vs_f1.py: F1 against cumulative update bytes, measured through the real system
(deploy/demo.sh: a private Mosquitto, one agent per IoT-23 capture, non-IID, the coordinator's
held-out test set). Runs each configuration for the same number of rounds, prints the curve of
each, and the ratio of training-round update bytes against dense FedAvg at the final F1.
Update bytes are the payload bytes of every update that reached the coordinator, accepted
(bytes_up_round) or refused (bytes_up_refused_round, e.g. too stale); the statistics round
(round 0) is the same for every configuration and is
reported separately. Usage: bench/bytes_vs_f1.py [--rounds 10] [--only NAME...]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [
    ("fedavg", "--strategy fedavg --robust none"),  # dense FedAvg as the issue means it
    ("fedadam", "--strategy fedadam --robust none"),
    ("gsfs-paper", "--strategy gsfs"),
    ("gsfs-paper+topk1%-i8", "--strategy gsfs --codec topk-i8 --topk-ratio 0.01"),
    ("gsfs+ (freq x examples, momentum 0.9, topk1%-i8)",
     "--strategy gsfs --gsfs-weighting frequency-examples --server-momentum 0.9 "
     "--codec topk-i8 --topk-ratio 0.01"),
    ("fedavg+topk1%-i8", "--strategy fedavg --codec topk-i8 --topk-ratio 0.01"),
    ("gsfs+ quorum 0.3, topk1.5%-i8",
     "--strategy gsfs --gsfs-weighting frequency-examples --server-momentum 0.9 "
     "--gsfs-quorum 0.3 --codec topk-i8 --topk-ratio 0.015"),
    ("gsfs+ quorum 0.3, topk1.25%-i8",
     "--strategy gsfs --gsfs-weighting frequency-examples --server-momentum 0.9 "
     "--gsfs-quorum 0.3 --codec topk-i8 --topk-ratio 0.0125"),
    ("gsfs+ quorum 0.1, example quorum 0.5, topk1.25%-i8",
     "--strategy gsfs --gsfs-weighting frequency-examples --server-momentum 0.9 "
     "--gsfs-quorum 0.1 --gsfs-quorum-examples 0.5 --codec topk-i8 --topk-ratio 0.0125"),
    ("gsfs+ quorum 0.3, topk2%-i8",
     "--strategy gsfs --gsfs-weighting frequency-examples --server-momentum 0.9 "
     "--gsfs-quorum 0.3 --codec topk-i8 --topk-ratio 0.02"),
    # sign values with Rice-coded indices, and agents leaving their metrics out of updates
    ("gsfs+ quorum 0.3, topk4%-sign, lean",
     "--strategy gsfs --gsfs-weighting frequency-examples --server-momentum 0.9 "
     "--gsfs-quorum 0.3 --codec topk-sign --topk-ratio 0.04 --agent-metrics=false"),
    ("gsfs+ quorum 0.6, topk3%-sign, lean",
     "--strategy gsfs --gsfs-weighting frequency-examples --server-momentum 0.9 "
     "--gsfs-quorum 0.6 --codec topk-sign --topk-ratio 0.03 --agent-metrics=false"),
    # memory: every agent's latest local model counts in every aggregation (MIFA)
    ("gsfs-paper+memory", "--strategy gsfs --gsfs-memory=true"),
    ("gsfs+memory quorum 0.6, topk2%-sign, lean",
     "--strategy gsfs --gsfs-memory=true --server-momentum 0.8 --gsfs-quorum 0.6 "
     "--codec topk-sign --topk-ratio 0.02 --agent-metrics=false"),
    ("gsfs+memory quorum 0.45, topk2.5%-sign, lean",
     "--strategy gsfs --gsfs-memory=true --server-momentum 0.8 --gsfs-quorum 0.45 "
     "--codec topk-sign --topk-ratio 0.025 --agent-metrics=false"),
    # and without agent and task in the envelope (the topic names them), server lr 1.5
    ("gsfs+memory quorum 0.6, topk2%-sign, lr 1.5, lean, no ids",
     "--strategy gsfs --gsfs-memory=true --server-momentum 0.8 --server-lr 1.5 "
     "--gsfs-quorum 0.6 --codec topk-sign --topk-ratio 0.02 --agent-metrics=false "
     "--update-ids=false"),
    # the same in the compact update envelope (one-letter keys, no ids)
    ("gsfs+memory quorum 0.6, topk2%-sign, lr 1.5, compact",
     "--strategy gsfs --gsfs-memory=true --server-momentum 0.8 --server-lr 1.5 "
     "--gsfs-quorum 0.6 --codec topk-sign --topk-ratio 0.02 --agent-metrics=false "
     "--update-envelope 2"),
]


def sent(m):
    """Update payload bytes that crossed the uplink in a round, refused ones included."""
    return m["bytes_up_round"] + m["bytes_up_refused_round"]


def run(args, rounds):
    with tempfile.TemporaryDirectory(prefix="fedmq-bench-") as d:
        keep = os.path.join(d, "run")
        r = subprocess.run([os.path.join(SRC, "deploy", "demo.sh"), "--no-build", "--rounds",
                            str(rounds), "--keep", keep, "--coordinator-args",
                            args + " --deadline 5"],
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            sys.exit("demo failed for %s:\n%s" % (args, r.stderr[-2000:]))
        with open(os.path.join(keep, "metrics.jsonl")) as f:
            return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of each GSFS configuration (its rounds depend on arrival order)")
    a = ap.parse_args()
    results = {}
    for name, args in CONFIGS:
        if a.only and not any(o in name for o in a.only):
            continue
        runs = [run(args, a.rounds) for _ in range(a.repeats if "gsfs" in args else 1)]
        finals = [(r[-1]["f1"], sum(sent(m) for m in r[1:])) for r in runs]
        ms = runs[0]
        stats = sent(ms[0])
        cum, curve = 0, []
        for m in ms[1:]:
            cum += sent(m)
            curve.append((m["round"], m["f1"], cum, m["participants"]))
        results[name] = (stats, curve, finals)
        print("\n%s   [%s]" % (name, args))
        print("  statistics round: %d bytes" % stats)
        print("  %5s %8s %14s %7s" % ("round", "F1", "cum. bytes", "agents"))
        for rnd, f1, c, p in curve:
            print("  %5d %8.4f %14d %7d" % (rnd, f1, c, p))
        if len(finals) > 1:
            print("  %d runs, final F1 / bytes: %s" % (len(finals), ", ".join(
                "%.4f / %d" % f for f in finals)))
        sys.stdout.flush()
    if "fedavg" not in results:
        return
    base_f1, base_bytes = results["fedavg"][1][-1][1], results["fedavg"][1][-1][2]
    target = base_f1 - 0.002
    print("\nsummary after %d rounds (training-round update bytes; ratio = dense FedAvg / this)"
          % a.rounds)
    print("  %-50s %15s %10s %12s %8s %s" % ("configuration", "F1 (min-max)", "mean - base",
                                             "bytes", "ratio", "runs within 0.2 pt"))
    for name, (stats, curve, finals) in results.items():
        f1s = [f for f, _ in finals]
        b = sum(x for _, x in finals) / len(finals)
        ok = sum(f >= target for f in f1s)
        print("  %-50s %6.4f-%6.4f %+10.4f %12.0f %8.1f %d of %d" % (
            name, min(f1s), max(f1s), sum(f1s) / len(f1s) - base_f1, b, base_bytes / b, ok,
            len(f1s)))


if __name__ == "__main__":
    main()
