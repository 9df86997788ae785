"""A ten-agent fleet over a real mosquitto for the robustness tests and benchmarks: the Mirai 34-1
capture's training part split by time into four sites plus the six other captures, each agent
fed only its own site (labels included), a coordinator running ROUNDS rounds and testing on the
last 30% of every capture. Some agents can be Byzantine (the agent's test mode). With
secure=True everything runs against the production broker (broker-config/mosquitto-prod.conf,
deploy/gen-certs.sh certificates, the fedmq plugin): each site's agent and its own sensor
identity <site>.sensors (a labeller). Returns the final round's metrics, plus "rounds_closed",
"coordinator_peak_kb" (the coordinator's peak RSS, /usr/bin/time) and "timed_out" (the
coordinator had not finished its rounds after `timeout` seconds; the metrics are then the last
round's it closed, or F1 NaN when it closed none). absent=k leaves the first k sites (the ones
attackers are taken from) out altogether: the fleet an attack is to be judged against, since an
attacker also takes its own site's honest data out of the federation. agent_args maps a site's
index to more agent flags; watch (plain broker only) is a topic filter whose messages, as
fedmq-inspect decodes them, come back in "watched"."""
import json
import math
import os
import signal
import subprocess
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
        rounds=8, coordinator_args=(), attack_count=0, secure=False, timeout=600, deadline=20,
        absent=0, agent_args=None, watch=None):
    sites = SITES[absent:]
    with session(SimpleNamespace(build=build, source=source, mosquitto=mosquitto),
                 "fedmq-fleet-") as h:
        data = os.path.join(source, "data", "iot23")
        tls_of = lambda ident: []  # noqa: E731
        if secure:
            from secure import Secure, gen_certs, start_secure_broker
            tls = os.path.join(h.work, "tls")
            names = [s for s, _, _ in sites]
            gen_certs(source, tls, names + [n + ".sensors" for n in names] +
                      ["fedmq-coordinator", "dashboard"])
            broker = start_secure_broker(h, tls, h.bin("broker-config/plugin/fedmq_plugin.so"),
                                         {"labellers": ",".join(n + ".sensors" for n in names)})
            sec = Secure(h, tls)
            tls_of = sec.fmq_tls
        else:
            broker = h.start_broker()
        for i, (site, _, _) in enumerate(sites):
            extra = ["--attack", attack, "--attack-scale", str(attack_scale),
                     "--attack-seed", "77", "--attack-count", str(attack_count)] \
                if i < attackers else []
            extra = extra + list((agent_args or {}).get(i, []))
            h.spawn("agent-" + site, [h.bin("agent/fedmq-agent"), "--broker", broker, "--id", site,
                                      "--sensors", "sensors/%s/+/conn" % site, "--min-train", "50"]
                    + extra + tls_of(site))
        bus = (sec.inspect("bus", "dashboard", "fedmq/iot23/status/#") if secure
               else h.inspect("bus", "fedmq/iot23/status/#"))
        h.wait_online(bus, len(sites), 30)
        if watch:
            assert not secure, "watch reads as an anonymous client: plain broker only"
            watched = h.inspect("watched", watch)
        for site, ci, rng in sites:
            ident = ["--client-id", site + ".sensors"] + tls_of(site + ".sensors") \
                if secure else []
            r = h.spawn("replay-" + site, [h.bin("tools/fedmq-replay"), "--broker", broker,
                                           "--site", site, "--fast", "--with-labels", "--range",
                                           rng, os.path.join(data, CAPTURES[ci])] + ident)
            assert r.wait(120) == 0, h.log("replay-" + site)
        metrics = os.path.join(h.work, "metrics.jsonl")
        peak = os.path.join(h.work, "coordinator.peak")
        coord = h.spawn("coordinator", ["/usr/bin/time", "-f", "%M", "-o", peak,
                                        h.bin("coordinator/fedmq-coordinator"), "--broker", broker,
                                        "--rounds", str(rounds), "--expected-agents",
                                        str(len(sites)), "--deadline", str(deadline),
                                        "--test-from", "0.7", "--metrics-file", metrics]
                        + (["--robust", robust] if robust else [])  # None: the default
                        + sum([["--test", os.path.join(data, c)] for c in CAPTURES], [])
                        + tls_of("fedmq-coordinator") + list(coordinator_args))
        try:
            assert coord.wait(timeout) == 0, h.log("coordinator")
            timed_out = False
        except subprocess.TimeoutExpired:  # the coordinator under /usr/bin/time, which reports
            with open("/proc/%d/task/%d/children" % (coord.pid, coord.pid)) as f:
                for child in f.read().split():
                    os.kill(int(child), signal.SIGTERM)
            coord.wait(30)
            timed_out = True
        ms = []
        if os.path.exists(metrics):
            with open(metrics) as f:
                ms = [json.loads(l) for l in f if l.endswith("\n")]
        m = dict(ms[-1]) if ms else {"f1": math.nan, "model_finite": False, "robust": {}}
        m["rounds_closed"] = sum(1 for x in ms if x.get("phase") == "train")
        m["timed_out"] = timed_out
        if watch:
            m["watched"] = h.messages(watched)
        try:
            with open(peak) as f:
                m["coordinator_peak_kb"] = int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            m["coordinator_peak_kb"] = -1
        return m
