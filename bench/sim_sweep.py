#!/usr/bin/env python3
"""bench/sim_sweep.py: coordinator configurations against plain dense FedAvg over many training
seeds on the demo's non-IID split (one agent per capture, each capture's first 70% trains, its
last 30% tests), through fedmq-sim, so a sweep of tens of runs takes seconds. For each
configuration it prints the ratio of training-round update bytes (the statistics round left
out, as bench/bytes_vs_f1.py counts them), how many seeds end within 0.2 F1 points of FedAvg
with the same seed (issue 3's target), the per-seed F1 differences, and with --per-capture each
seed's F1 per capture (accuracy, prefixed 'a', where a capture's test part has no attack).

  bench/sim_sweep.py [--seeds 10] [--rounds 10] [--per-capture] "KEY=V KEY=V" ...

Examples (after a build):
  bench/sim_sweep.py "strategy=gsfs gsfs_weighting=frequency-examples server_momentum=0.9 \\
      gsfs_quorum=0.3 codec=topk-i8 topk_ratio=0.0125 stochastic_rounding=true"
  bench/sim_sweep.py --seeds 3 --per-capture "robust=krum-filter" "robust=multi-krum" """
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)


def split(work):
    """The demo's split, written by bench/eval's own code."""
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader("fedmq_eval", os.path.join(HERE, "eval"))
    spec = importlib.util.spec_from_loader("fedmq_eval", loader)
    ev = importlib.util.module_from_spec(spec)
    loader.exec_module(ev)
    ev.time_split(ev.load_captures([os.path.join(SOURCE, "data", "iot23")], "--data"), work)
    return (sorted(glob.glob(os.path.join(work, "*.train.*"))),
            sorted(glob.glob(os.path.join(work, "*.test.*"))))


def run(a, train, test, seed, settings, work):
    m = os.path.join(work, "metrics.jsonl")
    if os.path.exists(m):
        os.remove(m)
    argv = [os.path.join(a.build, "tools", "fedmq-sim")] + sum([["--agent", f] for f in train], [])
    argv += ["--agent-set", "min_train=20", "--agent-set", "seed=%d" % seed]
    for c in ["rounds=%d" % a.rounds, "test_from=0", "seed=%d" % seed, "metrics_file=" + m] + \
            ["test=" + t for t in test] + settings:
        argv += ["--coord-set", c]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(m) as f:
        ms = [json.loads(line) for line in f if line.strip()]
    per = []
    for p in ms[-1]["per_test_file"]:
        tp, fp, tn, fn = p["tp"], p["fp"], p["tn"], p["fn"]
        per.append("%.2f" % (2 * tp / max(1, 2 * tp + fp + fn)) if tp + fn else
                   "a%.2f" % (tn / max(1, tn + fp)))
    # every update payload that reached the coordinator, refused ones (too stale...) included
    return ms[-1]["f1"], sum(x["bytes_up_round"] + x["bytes_up_refused_round"]
                             for x in ms[1:]), per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("configs", nargs="+", help='coordinator settings, e.g. "strategy=gsfs ..."')
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=1,
                    help="validate a configuration chosen on seeds 1..N on fresh ones")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--per-capture", action="store_true")
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"))
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fedmq-sweep-")
    try:
        train, test = split(work)
        seeds = range(a.first_seed, a.first_seed + a.seeds)
        base = {s: run(a, train, test, s, ["strategy=fedavg", "robust=none"], work)
                for s in seeds}
        print("dense FedAvg: F1 per seed %s; %d training-round update bytes" %
              (" ".join("%.4f" % base[s][0] for s in seeds), base[seeds[0]][1]))
        if a.per_capture:
            for s in seeds:
                print("  seed %d per capture: %s" % (s, " ".join(base[s][2])))
        for c in a.configs:
            r = {s: run(a, train, test, s, c.split(), work) for s in seeds}
            ok = sum(r[s][0] >= base[s][0] - 0.002 for s in seeds)
            ratio = sum(base[s][1] / r[s][1] for s in seeds) / len(seeds) if all(
                r[s][1] for s in seeds) else float("nan")
            print("%s\n  bytes ratio %.1f, within 0.2 points on %d of %d seeds; F1 - FedAvg: %s" %
                  (c, ratio, ok, len(seeds), " ".join("%+.4f" % (r[s][0] - base[s][0])
                                                       for s in seeds)))
            if a.per_capture:
                for s in seeds:
                    print("  seed %d F1 %.4f per capture: %s" % (s, r[s][0], " ".join(r[s][2])))
            sys.stdout.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
