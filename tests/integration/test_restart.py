"""Integration: the coordinator killed with SIGKILL in the middle of a run and started again with
the same state file. It must resume the same run at the version it had published (never an older
one), the agents must send again what the dead coordinator had not yet aggregated (a
republished version asks for it), and every remaining round must complete with every agent."""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import parse_args, session, site, wait_for  # noqa: E402

CAPTURES = ["CTU-IoT-Malware-Capture-34-1.conn.log.labeled",
            "CTU-Honeypot-Capture-5-1.conn.log.labeled",
            "CTU-IoT-Malware-Capture-44-1conn.log.labeled.csv"]
ROUNDS = 6


def main():
    args = parse_args()
    with session(args, "fedmq-restart-") as h:
        broker = h.start_broker()
        files = [os.path.join(args.source, "data", "iot23", c) for c in CAPTURES]
        bus = h.inspect("bus", "fedmq/#")
        for f in files:
            s = site(os.path.basename(f))
            h.spawn("agent-" + s, [h.bin("agent/fedmq-agent"), "--broker", broker, "--id", s,
                                   "--sensors", "sensors/%s/+/conn" % s, "--min-train", "50"])
        h.wait_online(bus, len(files), 20)
        r = h.spawn("replay", [h.bin("tools/fedmq-replay"), "--broker", broker, "--fast",
                               "--with-labels", "--range", "0:0.7"] + files)
        assert r.wait(120) == 0, h.log("replay")
        state = os.path.join(h.work, "coordinator.state")
        metrics = os.path.join(h.work, "metrics.jsonl")
        argv = [h.bin("coordinator/fedmq-coordinator"), "--broker", broker, "--rounds",
                str(ROUNDS), "--expected-agents", str(len(files)), "--deadline", "20",
                "--state-file", state, "--metrics-file", metrics, "--test-from", "0.7"] + \
            sum([["--test", f] for f in files], [])

        def rounds_done():
            if not os.path.exists(metrics):
                return 0
            with open(metrics) as f:
                return len([l for l in f if l.strip()])
        first = h.spawn("coordinator-1", argv)
        wait_for(lambda: rounds_done() >= 3, 60, "three rounds before the crash")
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = rounds_done()
        time.sleep(0.5)
        second = h.spawn("coordinator-2", argv)
        assert second.wait(180) == 0, h.log("coordinator-2")
        time.sleep(0.5)

        log2 = h.log("coordinator-2")
        assert "resumed run" in log2, log2
        globals_ = [m for m in h.messages(bus) if m.get("kind") == "global"]
        runs = {m["run"] for m in globals_}
        versions = [m["version"] for m in globals_]
        print("killed after %d metric records; runs %s; versions seen %s" %
              (killed_at, runs, versions))
        assert len(runs) == 1, "the restarted coordinator began a new run"
        assert versions == sorted(versions), "an older model version was published"
        assert versions[-1] == ROUNDS + 2, versions
        with open(metrics) as f:
            ms = [json.loads(l) for l in f if l.strip()]
        assert [m["round"] for m in ms] == list(range(ROUNDS + 1)), [m["round"] for m in ms]
        assert all(m["participants"] == len(files) for m in ms), [m["participants"] for m in ms]
        resent = sum(" again" in h.log("agent-" + site(os.path.basename(f))) for f in files)
        print("rounds after the restart all complete with %d agents; %d agents resent an update;"
              " final F1 %.4f" % (len(files), resent, ms[-1]["f1"]))
    print("integration_restart: passed")


if __name__ == "__main__":
    main()
