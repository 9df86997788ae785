"""Integration: an agent killed with SIGKILL in the middle of training, and a flood of malformed
messages on every topic the agents and the coordinator subscribe to, at the same time. The
rounds without the dead agent close at their deadline under the minimum participation rule; the
agent, started again, catches up from the retained global model and takes part in the next
round once it has records again (its buffer died with it). Every malformed message is counted, the logs stay rate-limited, nobody crashes, valid
traffic keeps flowing, and every process exits cleanly (under the sanitizer suite: no leak)."""
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import parse_args, session, site, wait_for  # noqa: E402

CAPTURES = ["CTU-IoT-Malware-Capture-34-1.conn.log.labeled",
            "CTU-Honeypot-Capture-5-1.conn.log.labeled",
            "CTU-IoT-Malware-Capture-44-1conn.log.labeled.csv"]
ROUNDS = 5
FLOOD = 2000  # malformed messages per flooded topic


def flood(h, topic, lines):
    """Publishes every line of `lines` as its own message (mosquitto_pub -l)."""
    p = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(h.port), "-q", "1",
                          "-t", topic, "-l"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    p.communicate("".join(l + "\n" for l in lines).encode(), timeout=120)
    return p.returncode


def main():
    args = parse_args()
    with session(args, "fedmq-chaos-") as h:
        broker = h.start_broker()
        files = [os.path.join(args.source, "data", "iot23", c) for c in CAPTURES]
        names = [site(os.path.basename(f)) for f in files]
        bus = h.inspect("bus", "fedmq/iot23/status/#", "fedmq/iot23/metrics")

        def agent(s, tag=""):
            return h.spawn("agent-" + s + tag,
                           [h.bin("agent/fedmq-agent"), "--broker", broker, "--id", s, "--sensors",
                            "sensors/%s/+/conn" % s, "--min-train", "50", "--status-interval",
                            "1", "--epochs", "10"])
        procs = {s: agent(s) for s in names}
        h.wait_online(bus, len(names), 20)
        r = h.spawn("replay", [h.bin("tools/fedmq-replay"), "--broker", broker, "--fast",
                               "--with-labels", "--range", "0:0.7"] + files)
        assert r.wait(120) == 0, h.log("replay")
        metrics = os.path.join(h.work, "metrics.jsonl")
        coord = h.spawn("coordinator", [h.bin("coordinator/fedmq-coordinator"), "--broker", broker,
                                        "--rounds", str(ROUNDS), "--expected-agents", "3",
                                        "--min-participants", "2", "--deadline", "6",
                                        "--metrics-file", metrics, "--test-from", "0.7"]
                        + sum([["--test", f] for f in files], []))

        def ms():  # read while the coordinator writes: complete lines only
            return h.messages(metrics) if os.path.exists(metrics) else []
        wait_for(lambda: len(ms()) >= 2, 60, "round 1")
        victim = names[2]
        procs[victim].send_signal(signal.SIGKILL)  # in the middle of round 2's training
        procs[victim].wait()
        # the flood, on every subscribed topic, while the survivors train
        junk = ['{"ts": 1, "id.orig_h": ', "not json", '{"ts":"yesterday"}', "\x01\x02\x03",
                '{"ts":1,"id.orig_h":"a","id.resp_h":"b","orig_bytes":-5}']
        lines = [junk[i % len(junk)] for i in range(FLOOD)]
        for s in names[:2]:
            assert flood(h, "sensors/%s/10.9.9.9/conn" % s, lines) == 0
        assert flood(h, "fedmq/iot23/update/" + names[0], lines) == 0
        assert flood(h, "fedmq/iot23/status/" + names[1], lines) == 0
        assert flood(h, "fedmq/iot23/model/global", lines[:200]) == 0
        wait_for(lambda: len(ms()) >= 4, 120, "two rounds without the dead agent")
        procs[victim] = agent(victim, "-again")  # back: catches up from the retained model
        wait_for(lambda: "adopted global" in h.log("agent-" + victim + "-again"), 30,
                 "the returning agent to adopt the current model")
        r = h.spawn("replay-again", [h.bin("tools/fedmq-replay"), "--broker", broker, "--fast",
                                     "--with-labels", "--range", "0:0.7", files[2]])
        assert r.wait(60) == 0, h.log("replay-again")  # its buffer died with it: new records
        assert coord.wait(180) == 0, h.log("coordinator")

        rounds = ms()
        parts = [m["participants"] for m in rounds]
        print("participants per round %s (agent killed after round 1, back after round 3)" %
              parts)
        assert [m["round"] for m in rounds] == list(range(ROUNDS + 1))
        assert all(p >= 2 for p in parts), parts
        assert parts[-1] == 3, "the returning agent did not catch up"
        rej = rounds[-1]["rejected"]["malformed"]
        st = {}
        for m in h.messages(bus):
            if m.get("kind") == "status":
                st[m["agent"]] = m
        bad = {s: st[s]["bad"] for s in names[:2]}
        print("malformed counted: coordinator %d (>= %d sent to it), agents %s (>= %d each)" %
              (rej, 2 * FLOOD, bad, FLOOD + 200))
        assert rej >= 2 * FLOOD, rej
        assert all(b >= FLOOD + 200 for b in bad.values()), bad
        for s in names[:2]:  # rate-limited logs: a handful of lines, not thousands
            n = h.log("agent-" + s).count("dropped message")
            assert n < 200, (s, n)
        for s, p in procs.items():
            assert p.poll() is None, h.log("agent-" + s)
            assert h.stop(p) == 0, h.log("agent-" + s + ("-again" if s == victim else ""))
    print("integration_chaos: passed")


if __name__ == "__main__":
    main()
