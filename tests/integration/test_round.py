"""Integration: one federated training over a real Mosquitto. Three agents (non-IID: each sees
one capture), the replay, and the coordinator for three rounds. Asserts on what arrives on the
topics: the retained global model version advances to the end, metrics arrive every round,
alerts arrive and are for malicious flows, the final test F1 is above 0.95, and malformed input
injected mid-run is counted while the processes keep running. Stops everything it started."""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ground_truth, parse_args, session, site, wait_for  # noqa: E402

CAPTURES = ["CTU-IoT-Malware-Capture-34-1.conn.log.labeled",
            "CTU-Honeypot-Capture-5-1.conn.log.labeled",
            "CTU-IoT-Malware-Capture-44-1conn.log.labeled.csv"]
ROUNDS = 3  # default; --rounds overrides


def main():
    args = parse_args(
        ("--rounds", dict(type=int, default=3)),
        ("--coordinator-args", dict(default="", help="strategy and codec flags")),
        ("--min-f1", dict(type=float, default=0.95)),
        ("--slow-agent-bps", dict(type=float, default=0,
                                  help="give the first agent a simulated uplink of this many "
                                       "bytes/s")),
        ("--max-update-bytes", dict(type=int, default=0,
                                    help="assert the mean update is at most this many bytes")))
    global ROUNDS
    ROUNDS = args.rounds
    t_start = time.time()
    with session(args, "fedmq-it-") as h:
        broker = h.start_broker()
        files = [os.path.join(args.source, "data", "iot23", c) for c in CAPTURES]
        bus = h.inspect("bus", "fedmq/#")
        agents = {}
        for i, f in enumerate(files):
            s = site(os.path.basename(f))
            extra = ["--simulate-uplink-bps", str(args.slow_agent_bps)] \
                if i == 0 and args.slow_agent_bps else []
            agents[s] = h.spawn("agent-" + s, [h.bin("agent/fedmq-agent"), "--broker", broker,
                                               "--id", s, "--sensors", "sensors/%s/+/conn" % s,
                                               "--min-train", "50", "--status-interval", "1"]
                                + extra)
        # every agent announces itself (retained status) before data flows
        h.wait_online(bus, len(agents), 20)
        r = h.spawn("replay-train", [h.bin("tools/fedmq-replay"), "--broker", broker, "--fast",
                                     "--with-labels", "--range", "0:0.7"] + files)
        assert r.wait(120) == 0, h.log("replay-train")

        metrics_file = os.path.join(h.work, "metrics.jsonl")
        coord = h.spawn("coordinator", [h.bin("coordinator/fedmq-coordinator"), "--broker", broker,
                                        "--rounds", str(ROUNDS),
                                        # one agent more than exist: every round runs to its
                                        # deadline and closes on the minimum participation rule,
                                        # which leaves a window for the hostile input below
                                        "--expected-agents", str(len(agents) + 1),
                                        "--min-participants", str(len(agents)),
                                        "--deadline", "2", "--test-from", "0.7",
                                        "--metrics-file", metrics_file]
                        + sum([["--test", f] for f in files], [])
                        + args.coordinator_args.split())

        wait_for(lambda: any(m.get("kind") == "global" for m in h.messages(bus)), 30,
                 "the coordinator's first model")
        time.sleep(0.3)
        # hostile input while everything runs: broken sensor JSON and a wrong-typed field to an
        # agent; a truncated, a wrong-dimension and a length-bomb update to the coordinator.
        a0 = site(CAPTURES[0])
        h.publish("sensors/%s/10.0.0.9/conn" % a0, payload='{"ts": 1, "id.orig_h": ')
        h.publish("sensors/%s/10.0.0.9/conn" % a0,
                  payload='{"ts":1,"id.orig_h":"a","id.resp_h":"b","orig_bytes":"many"}')
        # batches in one message: two NDJSON records, then an array of a good and a bad one
        # (3 more flows, 1 more bad message: a bad record costs only itself)
        rec = ('{"ts":1545403816.5,"uid":"Cbatch%d","id.orig_h":"192.168.1.195","id.orig_p":%d,'
               '"id.resp_h":"192.168.1.1","id.resp_p":53,"proto":"udp"}')
        h.publish("sensors/%s/192.168.1.195/conn" % a0,
                  payload=rec % (1, 40001) + "\n" + rec % (2, 40002) + "\n")
        h.publish("sensors/%s/192.168.1.195/conn" % a0,
                  payload="[" + rec % (3, 40003) + ',{"ts":1,"id.orig_h":"a"}]')
        # NDJSON whose first record is the bad one: the second still counts (4 flows, 2 bad)
        h.publish("sensors/%s/192.168.1.195/conn" % a0,
                  payload='{"ts":1,"id.orig_h":"a","orig_bytes":"many"}\n' + rec % (4, 40004))
        vec = os.path.join(args.source, "schemas", "vectors")
        h.publish("fedmq/iot23/update/agent-1", file=os.path.join(vec, "update_truncated.msgpack"))
        h.publish("fedmq/iot23/update/agent-1", file=os.path.join(vec, "update_valid.msgpack"))
        h.publish("fedmq/iot23/update/agent-1", file=os.path.join(vec, "bomb_array32.msgpack"))

        def metrics():
            return [m for m in h.messages(bus) if m["topic"] == "fedmq/iot23/metrics"]
        wait_for(lambda: any(json.loads(m["text"])["round"] >= 1 for m in metrics()), 120,
                 "round 1 metrics")
        # live traffic for the trained agents: the held-out part, without labels
        r = h.spawn("replay-test", [h.bin("tools/fedmq-replay"), "--broker", broker, "--fast",
                                    "--range", "0.7:1"] + files)
        assert r.wait(120) == 0, h.log("replay-test")
        assert coord.wait(180) == 0, h.log("coordinator")
        time.sleep(1.0)  # let the last alerts and statuses arrive

        msgs = h.messages(bus)
        # 1. the global model version advances: stats round + ROUNDS training rounds
        versions = [m["version"] for m in msgs if m.get("kind") == "global"]
        assert versions == sorted(versions), versions
        assert versions[0] == 1 and versions[-1] == ROUNDS + 2, versions
        retained = h.inspect("retained", "fedmq/iot23/model/global")
        got = wait_for(lambda: h.messages(retained), 10, "retained global model")
        assert got[0]["retained"] and got[0]["version"] == ROUNDS + 2, got
        assert got[0]["norm"] is True and got[0]["phase"] == "train", got

        # 2. metrics every round, rounds 0..ROUNDS, final F1 above 0.95
        ms = [json.loads(m["text"]) for m in metrics()]
        assert [m["round"] for m in ms] == list(range(ROUNDS + 1)), [m["round"] for m in ms]
        gsfs = "gsfs" in args.coordinator_args
        if gsfs:  # GSFS closes on its quorum, ceil(0.6 x 3) = 2, or at the deadline
            assert all(m["participants"] >= 1 for m in ms[1:]), ms
            assert all(m["strategy"] == "gsfs" for m in ms), ms[0]
        else:
            assert all(m["participants"] == len(agents) for m in ms), ms
        final = ms[-1]
        print("final round: F1 %.4f accuracy %.4f precision %.4f recall %.4f on %d test flows" %
              (final["f1"], final["accuracy"], final["precision"], final["recall"],
               final["test_flows"]))
        assert final["f1"] > args.min_f1, final
        if args.max_update_bytes:
            train = ms[1:]
            mean = sum(m["bytes_up_round"] for m in train) / sum(m["participants"] for m in train)
            print("mean update: %.0f bytes (%s)" % (mean, final["codec"]))
            assert mean <= args.max_update_bytes, mean
        assert final["bytes_up_total"] > 0 and final["model_bytes"] > 0, final

        if args.slow_agent_bps:
            # network sensing: the slow agent is measured, planned a lighter codec, and uses it;
            # the others keep the configured dense-f32
            slow = site(CAPTURES[0])
            links = {l["agent"]: l for l in ms[-1]["links"]}
            print("links:", links)
            assert links[slow]["rate_Bps"] < 5 * args.slow_agent_bps, links
            assert all(m["plans"] >= 1 for m in ms[1:]), [m["plans"] for m in ms]
            ups = [m for m in msgs if m.get("kind") == "update" and m["base"] >= 2]
            slow_codecs = {m["codec"] for m in ups if m["agent"] == slow}
            fast_codecs = {m["codec"] for m in ups if m["agent"] != slow}
            print("codecs: slow agent", slow_codecs, "others", fast_codecs)
            assert slow_codecs and "dense-f32" not in slow_codecs, slow_codecs
            assert fast_codecs == {"dense-f32"}, fast_codecs

        # 3. the injected bad updates were rejected and counted, never aggregated
        assert final["rejected"]["malformed"] >= 3, final["rejected"]
        bad = sum(os.path.getsize(os.path.join(vec, f)) for f in
                  ("update_truncated.msgpack", "update_valid.msgpack", "bomb_array32.msgpack"))
        refused = sum(m["bytes_up_refused_round"] for m in ms)
        assert refused >= bad, (refused, bad)  # they crossed the uplink: counted, not hidden
        assert "rejected message on fedmq/iot23/update/agent-1" in h.log("coordinator")

        # 4. alerts arrive, for malicious flows
        truth = {}
        for f in files:
            truth.update(ground_truth(f))
        alerts = [json.loads(m["text"]) for m in msgs if "/alerts/" in m["topic"]]
        hits = sum(truth.get(a["uid"]) == 1 for a in alerts)
        print("alerts: %d, of them malicious by ground truth: %d" % (len(alerts), hits))
        assert hits >= 1000, hits
        assert hits / len(alerts) >= 0.9, (hits, len(alerts))
        for a in alerts[:100]:  # each fired channel is above its own threshold
            assert a["reasons"] and a["why"], a
            # when it was raised (wall clock, this run), beside the flow's own (2018) time; an
            # unset Zeek field is null, never ""
            assert t_start <= a["alert_ts"] <= time.time() and a["ts"] < t_start, a
            assert all(a[k] is None or (isinstance(a[k], str) and a[k])
                       for k in ("proto", "service", "conn_state")), a
            assert "supervised" not in a["why"] or a["score"] >= a["threshold"], a
            assert "novelty" not in a["why"] or a["novelty"] >= a["novelty_threshold"], a

        # 5. the agent that got broken sensor messages counted them and kept working
        st = [m for m in msgs if m.get("kind") == "status" and m["agent"] == a0]
        assert st[-1]["bad"] >= 4, st[-1]
        # statuses are JSON a dashboard parses as it is (JSON.parse), with the same fields
        for m in (m for m in msgs if m.get("kind") == "status"):
            assert m["format"] == "json", m
            j = json.loads(m["text"])
            assert j["type"] == "status" and j["agent"] == m["agent"] and j["flows"] == m["flows"]
        assert all(p.poll() is None for p in agents.values()), "an agent died"
        for s, p in agents.items():
            rc = h.stop(p)
            assert rc == 0, ("agent %s exited with %s" % (s, rc), h.log("agent-" + s)[-3000:])
        # every record of a0's capture, and the four good ones of the batches
        with open(files[0]) as f:
            records = sum(1 for line in f if line.strip() and not line.startswith("#"))
        got = re.search(r"stopped: (\d+) flows", h.log("agent-" + a0))
        assert got and int(got.group(1)) == records + 4, (got and got.group(1), records)
        offline = wait_for(lambda: [m for m in h.messages(bus)
                                    if m.get("kind") == "status" and m["state"] == "offline"],
                           10, "offline status")
        assert len({m["agent"] for m in offline}) == len(agents)
        assert all(json.loads(m["text"])["state"] == "offline" for m in offline), offline
    print("integration_round: passed")


if __name__ == "__main__":
    main()
