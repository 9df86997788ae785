"""Integration: the coordinator's per-round metrics list every participant however large the
fleet. Its `agents` (and `links`) lists were written with snprintf into fixed buffers that cut
them silently at about 30 agents (issue 17), so a 1,000-agent run published incomplete lists;
they are cJSON arrays now. Sixty agents with 25-character ids (1.7 kB of ids, past the old
1 kB buffer) run one statistics and two training rounds in fedmq-sim (the coordinator's own
code on the in-process bus); every round's `agents` must name all sixty, once each."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import parse_args, session  # noqa: E402

N = 60
CAPTURE = "CTU-IoT-Malware-Capture-44-1conn.log.labeled.csv"  # 237 flows: cheap to train


def main():
    args = parse_args()
    with session(args, "fedmq-lists-") as h:
        src = os.path.join(args.source, "data", "iot23", CAPTURE)
        sites = ["gateway-of-site-number-%02d" % i for i in range(N)]
        files = []
        with open(src) as f:
            text = f.read()
        for s in sites:
            files.append(os.path.join(h.work, s + ".conn.log"))
            with open(files[-1], "w") as f:
                f.write(text)
        out = os.path.join(h.work, "metrics.jsonl")
        argv = [h.bin("tools/fedmq-sim")] + sum([["--agent", f] for f in files], [])
        argv += ["--agent-set", "min_train=50", "--agent-set", "seed=3"]
        argv += sum([["--coord-set", c] for c in
                     ["rounds=2", "seed=7", "calib_round=false", "metrics_file=" + out]], [])
        subprocess.run(argv, check=True, timeout=240, stdout=subprocess.DEVNULL)
        with open(out) as f:
            ms = [json.loads(l) for l in f if l.strip()]
        assert [m["round"] for m in ms] == [0, 1, 2], [m["round"] for m in ms]
        for m in ms:
            print("round %d: %d participants, %d listed" %
                  (m["round"], m["participants"], len(m["agents"])))
            assert m["participants"] == N, m["participants"]
            assert sorted(m["agents"]) == sites, m["agents"]
    print("integration_metrics_lists: passed")


if __name__ == "__main__":
    main()
