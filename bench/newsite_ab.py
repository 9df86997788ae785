#!/usr/bin/env python3
"""bench/newsite_ab.py: an A/B of new-site agent settings over leave-one-capture-out, through
bench/newsite.sh (fedmq-sim: the MLP, or MODEL=giot, federated on every data/iot23 capture but
the one judged, which then joins as a new site at its deployed rule). Prints per file and seed
the FPR, recall and false positives of each variant, then per variant the pooled recall, how
many runs are above 1% FPR and the worst FPR of any file but 42-1 (whose FPs are one
Benign-labelled C&C-like conversation, NOTES-14-eval.md).
Usage: bench/newsite_ab.py NAME:KEY=VALUE,KEY=VALUE ... (NAME: alone = the defaults)
  SEEDS=1,2,3 (default), FILES=a,b (default: data/iot23's captures and the SME desktop),
  BUILD=build (fedmq-sim's build directory).
e.g. SEEDS=7,8,9 bench/newsite_ab.py old:calib_exclude=fleet,calib_confidence=0 new:"""
import glob
import json
import os
import subprocess
import sys

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    files = sorted(glob.glob(SRC + "/data/iot23/*conn*")) + \
        glob.glob(SRC + "/data/more/stratosphere-labelled/idps-ctu-sme-11-*.labeled")
    if os.environ.get("FILES"):
        files = os.environ["FILES"].split(",")
    seeds = [int(x) for x in os.environ.get("SEEDS", "1,2,3").split(",")]
    variants = {}
    for a in sys.argv[1:]:
        name, _, sets = a.partition(":")
        variants[name] = [x for x in sets.split(",") if x]
    if not variants:
        sys.exit(__doc__)
    res = {}
    for f in files:
        for s in seeds:
            for v, sets in variants.items():
                o = "/tmp/newsite_ab_%s_%d_%s" % (os.path.basename(f)[:24], s, v)
                env = dict(os.environ, SEED=str(s), BUILD=os.environ.get("BUILD", SRC + "/build"))
                subprocess.run(["sh", SRC + "/bench/newsite.sh", f, o] + sets, env=env,
                               check=True, stdout=subprocess.DEVNULL)
                res[(f, s, v)] = json.load(open(o + ".s.json"))["new_sites"][0]
    print("%-28s" % "file.seed" + "".join("| %-24s" % v for v in variants))
    tot = {v: [0, 0, 0, 0.0, "-"] for v in variants}
    for f in files:
        for s in seeds:
            row = "%-28s" % (os.path.basename(f).replace("CTU-", "")[:24] + ".%d" % s)
            for v in variants:
                r = res[(f, s, v)]
                rec = "%.3f" % r["recall_deployed"] if r["malicious"] else "  -  "
                row += "| %.4f %s (%4d)     " % (r["fpr_deployed"], rec,
                                                 round(r["fpr_deployed"] * r["benign"]))
                t = tot[v]
                t[0] += r["malicious"]
                t[1] += round(r["recall_deployed"] * r["malicious"]) if r["malicious"] else 0
                t[2] += r["fpr_deployed"] > 0.01
                if r["fpr_deployed"] > t[3] and "42-1" not in f:
                    t[3], t[4] = r["fpr_deployed"], os.path.basename(f)[:24] + ".%d" % s
            print(row)
    for v, t in tot.items():
        print("%-10s pooled recall %.4f (%d/%d), runs FPR>1%%: %d/%d, worst but 42-1 %.4f (%s)" %
              (v, t[1] / max(t[0], 1), t[1], t[0], t[2], len(files) * len(seeds), t[3], t[4]))


if __name__ == "__main__":
    main()
