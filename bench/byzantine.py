#!/usr/bin/env python3
"""bench/byzantine.py: final F1 of a ten-agent fleet (tests/integration/fleet.py: real mosquitto,
agents and coordinator) when 10%, 20% and 30% of the agents are Byzantine, for every attack of the
agent's test mode and every defence, beside the clean run of each defence. An attack is only
meaningful if it hurts undefended FedAvg visibly (the sanity column). Prints one table: per row
the F1 per share of attackers, then the fewest training rounds the coordinator closed and its
largest peak RSS over the row (a round that never closes, or memory that grows, shows there).
The attacks of issue 15 (agent.h): model-replacement (inverted labels, 2^40 examples claimed),
huge-count (sign flip, 2^40 examples), huge-values (every value 3e38, 2^40 examples),
stats-poison (means 1e300 over 1 sample), stats-extreme (every mean at the top of its range, the
largest variance, 1e12 samples). --timeout bounds each run (a coordinator whose rounds never
close is stopped there); --secure runs against the production broker; --build may point at an
older build to measure the same attacks before a change.
Usage: bench/byzantine.py [--rounds 8] [--defences none,krum-filter,multi-krum,...]
                          [--attacks sign-flip,...] [--fractions 1,2,3] [--secure]
                          [--timeout 600] [--build DIR] [--coordinator-args '...']
                          (after a build)"""
import argparse
import math
import os
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import fleet  # noqa: E402

SCALES = {"sign-flip": 4, "scale": 10, "label-flip": 0, "noise": 1, "alie": 1.5,
          "model-replacement": 0, "huge-count": 0, "huge-values": 0, "stats-poison": 0,
          "stats-extreme": 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--mosquitto", default="/usr/sbin/mosquitto")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--defences", default="none,krum-filter,multi-krum,trimmed-mean,median,clip,"
                    "geomedian,geomed-filter", help="krum-filter is the coordinator's default")
    ap.add_argument("--attacks", default=",".join(SCALES))
    ap.add_argument("--fractions", default="1,2,3", help="attackers out of 10")
    ap.add_argument("--secure", action="store_true", help="the production broker (TLS, plugin)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run")
    ap.add_argument("--coordinator-args", default="",
                    help="more coordinator flags for every run, e.g. '--strategy gsfs "
                         "--gsfs-weighting frequency-examples'")
    a = ap.parse_args()
    defences, attacks = a.defences.split(","), a.attacks.split(",")
    fracs = [int(x) for x in a.fractions.split(",")]
    t0 = time.time()

    def f1(**kw):
        m = fleet.run(a.build, SRC, a.mosquitto, rounds=a.rounds, secure=a.secure,
                      timeout=a.timeout, coordinator_args=a.coordinator_args.split(), **kw)
        v = m["f1"]
        sys.stderr.write("  %-60s F1 %.4f, %d rounds, %d kB%s  (%.0f s)\n" %
                         (kw, v, m["rounds_closed"], m["coordinator_peak_kb"],
                          ", timed out" if m["timed_out"] else "", time.time() - t0))
        return (v if math.isfinite(v) else float("nan"), m["rounds_closed"],
                m["coordinator_peak_kb"])

    clean = {d: f1(robust=d)[0] for d in defences}
    # the same fleet without the attackers' sites: an attacker also withholds its site's honest
    # data (the first site holds most of 34-1's C&C training flows), so "steered" is measured
    # against this, not against the full clean fleet
    absent = {(d, k): f1(robust=d, absent=k)[0] for d in defences for k in fracs}
    print("\nfinal F1 after %d rounds, 10 agents%s; share of attackers per column; then the "
          "fewest training rounds closed and the largest coordinator peak RSS of the row; "
          "'steered' is the largest fall below the same fleet without the attackers' sites" %
          (a.rounds, ", production broker" if a.secure else ""))
    print("%-17s %-14s %8s" % ("attack", "defence", "clean") +
          "".join(" %9s" % ("%d0%%" % k) for k in fracs) + "   worst drop   steered  rounds  peak MB")
    for att in attacks:
        for d in defences:
            cells = [f1(attackers=k, attack=att, attack_scale=SCALES[att], robust=d)
                     for k in fracs]
            row = [c[0] for c in cells]
            base = clean.get("none", clean[d])  # undefended when measured, else its own
            drop = max((base - r for r in row if math.isfinite(r)), default=float("nan"))
            if any(not math.isfinite(r) for r in row):
                drop = float("nan")
            steer = max((absent[(d, k)] - r for k, r in zip(fracs, row)), default=float("nan"))
            print("%-17s %-14s %8.4f" % (att, d, clean[d]) + "".join(" %9.4f" % r for r in row)
                  + "   %+10.4f  %+8.4f  %6d  %7.1f" % (-drop, -steer, min(c[1] for c in cells),
                                                max(c[2] for c in cells) / 1024.0), flush=True)
    for d in defences:
        print("%-17s %-14s %8s" % ("attackers absent", d, "") +
              "".join(" %9.4f" % absent[(d, k)] for k in fracs))
    print("(drop against clean undefended FedAvg when measured (%s), else against the "
          "defence's own clean run; wall %.0f s)" % (clean.get("none", "-"), time.time() - t0))


if __name__ == "__main__":
    main()
