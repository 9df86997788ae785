"""Integration (issue 14): a new site joins a trained federation and catches an attack family it
never saw, at its own deployed rule, over a real Mosquitto.

Seven labelled sites train the default MLP (FedAvg, the default robust rule) for --rounds rounds
and a calibration round, so the last global model carries a fleet rule measured on itself: two
benign IoT honeypots, a benign desktop (CTU-SME-11), two Torii captures, the Trojan capture and
Mirai 44-1, whose attacks are C&C and file downloads. None of them holds a flood. Then a new
agent joins with no labels and no training (train = false): it adopts the retained model,
receives Mirai 34-1's traffic without labels, in time order (two thirds of it a flood of
checksum-broken packets to one host, the rest IRC C&C) and judges every flow live, learning on
the fleet's caps, then on its own calibration. By ground truth its alerts must find at least
--min-recall of the attacks with at most --max-fpr of the benign flows flagged (the budget is
1%), the novelty channel alone must flag most of the flood (the fleet never labelled one), every alert
must say which channel fired and in which calibration state, and the agent's status must report
it calibrated."""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ground_truth, parse_args, session, site, wait_for  # noqa: E402

FLEET = ["iot23/CTU-Honeypot-Capture-4-1.conn.log.labeled",
         "iot23/CTU-Honeypot-Capture-5-1.conn.log.labeled",
         "iot23/CTU-IoT-Malware-Capture-20-1conn.log.labeled.csv",
         "iot23/CTU-IoT-Malware-Capture-21-1conn.log.labeled.csv",
         "iot23/CTU-IoT-Malware-Capture-42-1.conn.log.labeled",
         "iot23/CTU-IoT-Malware-Capture-44-1conn.log.labeled.csv",
         "more/stratosphere-labelled/idps-ctu-sme-11-2023-02-20-192.168.1.109.conn.log.labeled"]
NEW = "iot23/CTU-IoT-Malware-Capture-34-1.conn.log.labeled"


def main():
    args = parse_args(("--rounds", dict(type=int, default=5)),
                      ("--min-recall", dict(type=float, default=0.5)),
                      ("--max-fpr", dict(type=float, default=0.015)))
    with session(args, "fedmq-newsite-") as h:
        broker = h.start_broker()
        data = os.path.join(args.source, "data")
        files = [os.path.join(data, f) for f in FLEET]
        bus = h.inspect("bus", "fedmq/#")
        agents = {}
        for f in files:
            s = site(os.path.basename(f))
            agents[s] = h.spawn("agent-" + s, [h.bin("agent/fedmq-agent"), "--broker", broker,
                                               "--id", s, "--sensors", "sensors/%s/+/conn" % s,
                                               "--min-train", "20"])
        h.wait_online(bus, len(agents), 30)
        r = h.spawn("replay-fleet", [h.bin("tools/fedmq-replay"), "--broker", broker, "--fast",
                                     "--with-labels"] + files)
        assert r.wait(300) == 0, h.log("replay-fleet")
        metrics = os.path.join(h.work, "metrics.jsonl")
        c = h.spawn("coordinator", [h.bin("coordinator/fedmq-coordinator"), "--broker", broker,
                                    "--rounds", str(args.rounds), "--calib-round",
                                    "--expected-agents", str(len(files)), "--deadline", "60",
                                    "--metrics-file", metrics])
        assert c.wait(600) == 0, h.log("coordinator")
        with open(metrics) as f:
            ms = [json.loads(line) for line in f]
        assert ms[-1]["phase"] == "calib", [m["phase"] for m in ms]
        rule = ms[-1]["rule"]
        assert rule["sites"] >= 5 and "supervised" in rule and "novelty" in rule, rule

        # the new site: no labels, no training, the retained model and its fleet rule
        new = "newsite"
        truth = ground_truth(os.path.join(data, NEW))
        p = h.spawn("agent-" + new, [h.bin("agent/fedmq-agent"), "--broker", broker, "--id", new,
                                     "--sensors", "sensors/%s/+/conn" % new, "--train=false",
                                     "--status-interval", "1"])
        wait_for(lambda: "adopted global mlp model" in h.log("agent-" + new) and
                 "fleet rule" in h.log("agent-" + new), 30, "the new site to adopt the model")
        r = h.spawn("replay-new", [h.bin("tools/fedmq-replay"), "--broker", broker, "--fast",
                                   "--site", new, os.path.join(data, NEW)])
        assert r.wait(300) == 0, h.log("replay-new")

        def status():
            st = [m for m in h.messages(bus) if m.get("kind") == "status" and m["agent"] == new]
            return st[-1] if st else {}
        wait_for(lambda: status().get("flows", 0) >= len(truth), 300,
                 "the new site to judge every flow")
        wait_for(lambda: status().get("calib") == "calibrated", 10, "a calibrated status")
        alerts = [json.loads(m["text"]) for m in h.messages(bus)
                  if m["topic"] == "fedmq/iot23/alerts/" + new]
        mal = sum(truth.values())
        ben = len(truth) - mal
        hits = {a["uid"] for a in alerts if truth.get(a["uid"]) == 1}
        fps = {a["uid"] for a in alerts if truth.get(a["uid"]) == 0}
        flood = [a for a in alerts if a["conn_state"] == "OTH" and truth.get(a["uid"]) == 1]
        why = collections.Counter("+".join(a["why"]) for a in alerts)
        states = collections.Counter(a["calibration"] for a in alerts)
        print("new site: %d alerts; recall %.3f (%d of %d attacks), FPR %.4f (%d of %d benign); "
              "flood alerts %d; channels %s; states %s" %
              (len(alerts), len(hits) / mal, len(hits), mal, len(fps) / ben, len(fps), ben,
               len(flood), dict(why), dict(states)))
        assert len(hits) / mal >= args.min_recall, (len(hits), mal)
        assert len(fps) / ben <= args.max_fpr, (len(fps), ben)
        # the flood is most of the attack, and the novelty channel alone flags most of it
        nov_flood = [a for a in flood if "novelty" in a["why"]]
        assert len(nov_flood) >= 0.5 * mal, (len(nov_flood), mal, why)
        for a in alerts[:200]:
            assert a["why"] and a["calibration"] in ("learning", "calibrated", "recalibrating"), a
            assert a["model"] == "mlp" and a["text"], a
        assert h.stop(p) == 0, h.log("agent-" + new)
        for s, q in agents.items():
            assert q.poll() is None, "agent %s died: %s" % (s, h.log("agent-" + s))
    print("integration_newsite: passed")


if __name__ == "__main__":
    main()
