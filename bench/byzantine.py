#!/usr/bin/env python3
"""bench/byzantine.py: final F1 of a ten-agent fleet (tests/integration/fleet.py: real mosquitto,
agents and coordinator) when 10%, 20% and 30% of the agents are Byzantine, for every attack of the
agent's test mode and every defence, beside the clean run of each defence. An attack is only
meaningful if it hurts undefended FedAvg visibly (the sanity column). Prints one table.
Usage: bench/byzantine.py [--rounds 8] [--defences none,krum-filter,multi-krum,...]
                          [--attacks sign-flip,scale,label-flip,noise,alie]   (after a build)"""
import argparse
import math
import os
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import fleet  # noqa: E402

SCALES = {"sign-flip": 4, "scale": 10, "label-flip": 0, "noise": 1, "alie": 1.5}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--mosquitto", default="/usr/sbin/mosquitto")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--defences", default="none,krum-filter,multi-krum,trimmed-mean,median,clip,"
                    "geomedian,geomed-filter", help="krum-filter is the coordinator's default")
    ap.add_argument("--attacks", default="sign-flip,scale,label-flip,noise,alie")
    ap.add_argument("--fractions", default="1,2,3", help="attackers out of 10")
    a = ap.parse_args()
    defences, attacks = a.defences.split(","), a.attacks.split(",")
    fracs = [int(x) for x in a.fractions.split(",")]
    t0 = time.time()

    def f1(**kw):
        m = fleet.run(a.build, SRC, a.mosquitto, rounds=a.rounds, **kw)
        v = m["f1"]
        sys.stderr.write("  %-60s F1 %.4f  (%.0f s)\n" % (kw, v, time.time() - t0))
        return v if math.isfinite(v) else float("nan")

    clean = {d: f1(robust=d) for d in defences}
    print("\nfinal F1 after %d rounds, 10 agents; attackers out of 10 in brackets" % a.rounds)
    print("%-12s %-14s %8s" % ("attack", "defence", "clean") +
          "".join(" %9s" % ("%d0%%" % k) for k in fracs) + "   worst drop")
    for att in attacks:
        for d in defences:
            row = [f1(attackers=k, attack=att, attack_scale=SCALES[att], robust=d) for k in fracs]
            base = clean.get("none", clean[d])  # undefended when measured, else its own
            drop = max(base - r for r in row)
            print("%-12s %-14s %8.4f" % (att, d, clean[d]) + "".join(" %9.4f" % r for r in row)
                  + "   %+.4f" % -drop, flush=True)
    print("(drop against clean undefended FedAvg when measured (%s), else against the "
          "defence's own clean run; wall %.0f s)" % (clean.get("none", "-"), time.time() - t0))


if __name__ == "__main__":
    main()
