"""A ten-agent fleet over a real mosquitto for the robustness test and benchmark: the Mirai 34-1
capture's training part split by time into four sites plus the six other captures, each agent
fed only its own site (labels included), a coordinator running ROUNDS rounds and testing on the
last 30% of every capture. Some agents can be Byzantine (the agent's test mode). Returns the
final round's metrics."""
import json
import os
from types import SimpleNamespace

from harness import session

CAPTURES = ["CTU-IoT-Malware-Capture-34-1.conn.log.labeled",
            "CTU-IoT-Malware-Capture-42-1.conn.log.labeled",
            "CTU-Honeypot-Capture-5-1.conn.log.labeled",
            "CTU-IoT-Malware-Capture-20-1conn.log.labeled.csv",
            "CTU-IoT-Malware-Capture-21-1conn.log.labeled.csv",
            "CTU-Honeypot-Capture-4-1.conn.log.labeled",
            "CTU-IoT-Malware-Capture-44-1conn.log.labeled.csv"]
# (site, capture index, replay range); attackers are taken from the front of this list
SITES = [("mirai-a", 0, "0:0.175"), ("trojan", 1, "0:0.7"), ("mirai-b", 0, "0.175:0.35"),
         ("echo", 2, "0:0.7"), ("torii-1", 3, "0:0.7"), ("mirai-c", 0, "0.35:0.525"),
         ("torii-2", 4, "0:0.7"), ("hue", 5, "0:0.7"), ("mirai-d", 0, "0.525:0.7"),
         ("mirai-44", 6, "0:0.7")]


def run(build, source, mosquitto, attackers=0, attack="none", attack_scale=0, robust=None,
        rounds=8, coordinator_args=()):
    with session(SimpleNamespace(build=build, source=source, mosquitto=mosquitto),
                 "fedmq-fleet-") as h:
        broker = h.start_broker()
        data = os.path.join(source, "data", "iot23")
        for i, (site, _, _) in enumerate(SITES):
            extra = ["--attack", attack, "--attack-scale", str(attack_scale),
                     "--attack-seed", "77"] if i < attackers else []
            h.spawn("agent-" + site, [h.bin("agent/fedmq-agent"), "--broker", broker, "--id", site,
                                      "--sensors", "sensors/%s/+/conn" % site, "--min-train", "50"]
                    + extra)
        bus = h.inspect("bus", "fedmq/iot23/status/#")
        h.wait_online(bus, len(SITES), 30)
        for site, ci, rng in SITES:
            r = h.spawn("replay-" + site, [h.bin("tools/fedmq-replay"), "--broker", broker,
                                           "--site", site, "--fast", "--with-labels", "--range",
                                           rng, os.path.join(data, CAPTURES[ci])])
            assert r.wait(120) == 0, h.log("replay-" + site)
        metrics = os.path.join(h.work, "metrics.jsonl")
        coord = h.spawn("coordinator", [h.bin("coordinator/fedmq-coordinator"), "--broker", broker,
                                        "--rounds", str(rounds), "--expected-agents",
                                        str(len(SITES)), "--deadline", "20", "--test-from",
                                        "0.7", "--metrics-file", metrics]
                        + (["--robust", robust] if robust else [])  # None: the default
                        + sum([["--test", os.path.join(data, c)] for c in CAPTURES], [])
                        + list(coordinator_args))
        assert coord.wait(600) == 0, h.log("coordinator")
        with open(metrics) as f:
            ms = [json.loads(l) for l in f]
        return ms[-1]
