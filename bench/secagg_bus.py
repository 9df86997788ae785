#!/usr/bin/env python3
"""Secure aggregation's cost over the bus, whole rounds: fedmq-sim (the coordinator's and the
agents' own code over the in-process MQTT bus, every protocol message encoded and carried) runs
N agents for ROUNDS training rounds twice, aggregated in the clear (FedAvg, weighting uniform,
robust none: the same equal weights) and with secure_agg, and prints per agent and round the
payload bytes up and down, the agents' and the coordinator's CPU time, and secure / clear
ratios measured in the same run. N agents come from the seven data/iot23 captures cut by time
into ceil(N / 7) shards each (the first N shards). fmq_bench_secagg prints the protocol's own
cost in one process; this is what a round over the bus costs on top of a clear one.
"in the mean" is the last round's participants (secure: the vectors in its sum; shards too
small to train, under min_train flows, take part in neither; no dropouts here, integration_secagg
runs dropouts over a real broker).
Usage: bench/secagg_bus.py [--build build] [--agents 10,100] [--rounds 3] [--model mlp|giot]"""
import argparse
import glob
import json
import math
import os
import subprocess
import tempfile

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shards(tmp, n):
    """n time-ordered shards of the bundled captures, as Zeek TSV files with their headers."""
    files = sorted(glob.glob(os.path.join(SRC, "data", "iot23", "*conn*")))
    per = math.ceil(n / len(files))
    out = []
    for f in files:
        with open(f) as fh:
            lines = fh.read().splitlines(True)
        csv = f.endswith(".csv")  # a header line, then rows
        head = lines[:1] if csv else [l for l in lines if l.startswith("#")]
        rows = [l for l in (lines[1:] if csv else lines) if not l.startswith("#") and l.strip()]
        for k in range(per):
            part = rows[k * len(rows) // per:(k + 1) * len(rows) // per]
            p = os.path.join(tmp, "s%03d-%s" % (len(out), os.path.basename(f)))
            with open(p, "w") as fh:
                fh.writelines(head + part)
            out.append(p)
    # interleave the captures so that the first n shards cover all of them
    order = sorted(range(len(out)), key=lambda i: (i % per, i // per))
    return [out[i] for i in order][:n]


def run(build, files, rounds, model, secure, tmp):
    m = os.path.join(tmp, "m-%s.jsonl" % secure)
    s = os.path.join(tmp, "s-%s.json" % secure)
    for p in (m, s):
        if os.path.exists(p):
            os.remove(p)
    argv = [os.path.join(build, "tools", "fedmq-sim")]
    for f in files:
        argv += ["--agent", f]
    argv += ["--agent-set", "min_train=20", "--coord-set", "rounds=%d" % rounds,
             "--coord-set", "robust=none", "--coord-set", "model=" + model,
             "--coord-set", "metrics_file=" + m, "--summary", s]
    argv += ["--coord-set", "secure_agg=true"] if secure else \
        ["--coord-set", "weighting=uniform"]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ms = [json.loads(l) for l in open(m)]
    summ = json.load(open(s))
    train = [x for x in ms if x["phase"] == "train"]
    n = len(files)
    # downlink: the model to every agent (bytes_down_round) plus the protocol's messages, which
    # the coordinator adds to bytes_down_total as it sends them
    down = (ms[-1]["bytes_down_total"]) / (len(ms) * n)
    return {"up": sum(x["bytes_up_round"] for x in ms) / (len(ms) * n), "down": down,
            "agent_cpu_ms": 1e3 * summ["agent_cpu_s_mean"] / len(ms),
            "coord_cpu_ms": 1e3 * summ["coordinator_cpu_s"] / len(ms),
            "summed": (train[-1]["secagg"]["summed"] if train[-1]["secagg"]
                       else train[-1]["participants"]) if train else 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--agents", default="10,100")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default="mlp")
    a = ap.parse_args()
    print("per agent and round (statistics round included), %d training rounds, %s" %
          (a.rounds, a.model))
    print("| agents | mode | bytes up | bytes down | agent CPU ms | coordinator CPU ms | "
          "in the mean |")
    print("|---|---|---|---|---|---|---|")
    for n in [int(x) for x in a.agents.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            files = shards(tmp, n)
            clear = run(a.build, files, a.rounds, a.model, False, tmp)
            sec = run(a.build, files, a.rounds, a.model, True, tmp)
        for name, r in (("clear", clear), ("secure", sec)):
            print("| %d | %s | %.0f | %.0f | %.1f | %.1f | %d |" % (
                n, name, r["up"], r["down"], r["agent_cpu_ms"], r["coord_cpu_ms"], r["summed"]))
        print("| %d | secure / clear | %.2fx | %.2fx | %.2fx | %.2fx | |" % (
            n, sec["up"] / clear["up"], sec["down"] / clear["down"],
            sec["agent_cpu_ms"] / clear["agent_cpu_ms"],
            sec["coord_cpu_ms"] / clear["coord_cpu_ms"]))


if __name__ == "__main__":
    main()
