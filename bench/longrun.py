#!/usr/bin/env python3
"""Long-run memory benchmark (issue 16): the real system (a private mosquitto, the coordinator
and two agents on the small IoT-23 captures) for many rounds, MLP and GIoT, printing the resident
set size (VmRSS) of the coordinator and of one agent after every round, then the slope after
warm-up (least squares, kB per round, over the second half of the rounds). Flat means the
slope is about 0; before issue 16 the inbound queue kept the largest message each of its 4,096
slots ever held, and both grew by kilobytes per round until all slots had held a model.

  bench/longrun.py [--build build] [--rounds 500] [--models mlp,giot] [--every 1]

Rounds are made cheap (one epoch, a few GIoT steps, a thinned test set): what is measured is
memory, not learning. Prints figures only; tests/unit/test_mq.c asserts the queue behaviour."""
import argparse
import os
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from harness import Harness, wait_for  # noqa: E402

CAPTURES = ["CTU-Honeypot-Capture-5-1.conn.log.labeled",
            "CTU-IoT-Malware-Capture-44-1conn.log.labeled.csv"]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def slope(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0


def run(args, model):
    import tempfile
    work = tempfile.mkdtemp(prefix="fedmq-longrun-")
    h = Harness(os.path.abspath(args.build), SRC, args.mosquitto, work)
    try:
        broker = h.start_broker()
        data = os.path.join(SRC, "data", "iot23")
        files = [os.path.join(data, c) for c in CAPTURES]
        agents = []
        for i, f in enumerate(files):
            extra = ["--giot-steps", "2", "--giot-batch", "4"] if model == "giot" else \
                ["--epochs", "1"]
            agents.append(h.spawn("agent-%d" % i, [
                h.bin("agent/fedmq-agent"), "--broker", broker, "--id", "site-%d" % i,
                "--sensors", "sensors/site-%d/+/conn" % i, "--min-train", "50",
                "--status-interval", "5"] + extra))
        time.sleep(1.5)
        for i, f in enumerate(files):
            r = h.spawn("replay-%d" % i, [h.bin("tools/fedmq-replay"), "--broker", broker,
                                          "--fast", "--with-labels", "--site", "site-%d" % i,
                                          "--range", "0:0.7", f])
            assert r.wait(60) == 0, h.log("replay-%d" % i)
        metrics = os.path.join(work, "metrics.jsonl")
        argv = [h.bin("coordinator/fedmq-coordinator"), "--broker", broker, "--rounds",
                str(args.rounds), "--expected-agents", "2", "--deadline", "30",
                "--metrics-file", metrics, "--test-from", "0.7", "--eval-max", "200",
                "--log-level", "warn"] + sum([["--test", f] for f in files], [])
        if model == "giot":
            argv += ["--model", "giot"]
        coord = h.spawn("coordinator", argv)
        seen, rows, t0 = 0, [], time.time()
        print("%s: round  coordinator_kB  agent_kB" % model)
        while coord.poll() is None or seen < args.rounds + 1:
            n = 0
            if os.path.exists(metrics):
                with open(metrics) as f:
                    n = sum(1 for line in f if line.endswith("\n"))
            if n > seen and coord.poll() is None:
                c, a = rss_kb(coord.pid), rss_kb(agents[0].pid)
                for r in range(seen, n):
                    rows.append((r, c, a))
                    if r % args.every == 0:
                        print("%s %5d %10d %10d" % (model, r, c, a), flush=True)
                seen = n
            elif coord.poll() is not None:
                break
            time.sleep(0.02)
        assert coord.wait(30) == 0, h.log("coordinator")
        half = [r for r in rows if r[0] >= len(rows) // 2]
        xs = [r[0] for r in half]
        sc, sa = slope(xs, [r[1] for r in half]), slope(xs, [r[2] for r in half])
        print("%s: %d rounds in %.0f s; RSS coordinator %d -> %d kB, agent %d -> %d kB; slope "
              "over rounds %d-%d: coordinator %+.2f kB/round, agent %+.2f kB/round" %
              (model, len(rows) - 1, time.time() - t0, rows[0][1], rows[-1][1], rows[0][2],
               rows[-1][2], xs[0], xs[-1], sc, sa), flush=True)
        return sc, sa
    finally:
        h.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--mosquitto", default="mosquitto")
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--models", default="mlp,giot")
    ap.add_argument("--every", type=int, default=1, help="print every N-th round")
    args = ap.parse_args()
    for m in args.models.split(","):
        run(args, m)


if __name__ == "__main__":
    main()
