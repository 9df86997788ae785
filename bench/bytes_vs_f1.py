#!/usr/bin/env python3
"""bench/bytes_vs_f1.py: F1 against cumulative update bytes, measured through the real system
(deploy/demo.sh: a private Mosquitto, one agent per IoT-23 capture, non-IID, the coordinator's
held-out test set). Runs each configuration for the same number of rounds, prints the curve of
each, and the ratio of training-round update bytes against dense FedAvg at the final F1.
Update bytes are the payload bytes of accepted updates as the coordinator counts them
(bytes_up_round); the statistics round (round 0) is the same for every configuration and is
reported separately. Usage: bench/bytes_vs_f1.py [--rounds 10] [--only NAME...]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [
    ("fedavg", "--strategy fedavg"),
    ("fedadam", "--strategy fedadam"),
    ("gsfs-paper", "--strategy gsfs"),
    ("gsfs-paper+topk1%-i8", "--strategy gsfs --codec topk-i8 --topk-ratio 0.01"),
    ("gsfs+ (freq x examples, momentum 0.9, topk1%-i8)",
     "--strategy gsfs --gsfs-weighting frequency-examples --server-momentum 0.9 "
     "--codec topk-i8 --topk-ratio 0.01"),
    ("fedavg+topk1%-i8", "--strategy fedavg --codec topk-i8 --topk-ratio 0.01"),
]


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
    a = ap.parse_args()
    results = {}
    for name, args in CONFIGS:
        if a.only and not any(o in name for o in a.only):
            continue
        ms = run(args, a.rounds)
        stats = ms[0]["bytes_up_round"]
        cum, curve = 0, []
        for m in ms[1:]:
            cum += m["bytes_up_round"]
            curve.append((m["round"], m["f1"], cum, m["participants"]))
        results[name] = (stats, curve)
        print("\n%s   [%s]" % (name, args))
        print("  statistics round: %d bytes" % stats)
        print("  %5s %8s %14s %7s" % ("round", "F1", "cum. bytes", "agents"))
        for rnd, f1, c, p in curve:
            print("  %5d %8.4f %14d %7d" % (rnd, f1, c, p))
        sys.stdout.flush()
    if "fedavg" not in results:
        return
    base_f1, base_bytes = results["fedavg"][1][-1][1], results["fedavg"][1][-1][2]
    print("\nsummary after %d rounds (training-round update bytes; ratio = dense FedAvg / this)"
          % a.rounds)
    print("  %-50s %8s %10s %12s %8s %s" % ("configuration", "F1", "F1 - base", "bytes",
                                            "ratio", "within 0.2 pt"))
    for name, (stats, curve) in results.items():
        f1, b = curve[-1][1], curve[-1][2]
        print("  %-50s %8.4f %+10.4f %12d %8.1f %s" % (name, f1, f1 - base_f1, b, base_bytes / b,
                                                        "yes" if f1 >= base_f1 - 0.002 else "no"))


if __name__ == "__main__":
    main()
