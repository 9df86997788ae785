"""Integration: messages lost while every connection stays up. The broker's ACL (reloaded with
SIGHUP mid-test) first keeps one agent from reading the global model and from publishing its
update, both silently, as a broker drops what an ACL denies. No disconnect ever tells anyone.
Asserts that the round still completes with every agent, through the two liveness rules:
- the coordinator publishes the model of a round that outlived its deadline again
  (`republish`), so the agent that missed it adopts it once it may read it;
- the agent sends an update that got no receipt again (`update_retry`), so the update dropped
  at the broker arrives once it may publish.
Without republishing, round 0 never closes and the test times out; without the agent's retry,
the update arrives only at the coordinator's next, later republish, and the test fails on the
agent's log. Then every later round completes with every agent, and each agent's update for
each version is applied exactly once."""
import getpass
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
ROUNDS = 2
CUT = "lossy"  # username of the agent whose messages the ACL drops

# Anonymous clients (the other agents, the coordinator, the tools) may do anything; the agent
# that logs in as CUT gets what the stage allows. The broker reloads this file on SIGHUP.
ACL_BASE = ("topic readwrite #\n\n"
            "user {u}\ntopic read sensors/#\ntopic readwrite fedmq/iot23/status/{a}\n"
            "topic read fedmq/iot23/receipt/{a}\n")
STAGES = {"blind": "",  # reads neither the model nor may it publish an update
          "mute": "topic read fedmq/iot23/model/#\n",  # sees models; its updates are dropped
          "open": "topic read fedmq/iot23/model/#\ntopic write fedmq/iot23/update/{a}\n"}


def main():
    args = parse_args()
    with session(args, "fedmq-lost-") as h:
        acl = os.path.join(h.work, "acl")
        agents = [site(c) for c in CAPTURES]
        cut = agents[0]

        def stage(name):
            with open(acl, "w") as f:
                f.write((ACL_BASE + STAGES[name]).format(u=CUT, a=cut))
            if getattr(h, "broker", None) is not None:
                h.broker.send_signal(signal.SIGHUP)
                time.sleep(0.5)  # mosquitto reloads between network-loop cycles
        stage("blind")
        # mosquitto started as root drops to user "mosquitto" unless told to stay this user
        broker = h.start_broker(edit=lambda t: t + "acl_file %s\nuser %s\n"
                                % (acl, getpass.getuser()))
        files = [os.path.join(args.source, "data", "iot23", c) for c in CAPTURES]
        for s in agents:
            login = ["--username", CUT] if s == cut else []
            h.spawn("agent-" + s, [h.bin("agent/fedmq-agent"), "--broker", broker, "--id", s,
                                   "--sensors", "sensors/%s/+/conn" % s, "--min-train", "50",
                                   "--update-retry", "2"] + login)
        bus = h.inspect("bus", "fedmq/iot23/#")
        h.wait_online(bus, len(agents), 20)
        r = h.spawn("replay", [h.bin("tools/fedmq-replay"), "--broker", broker, "--fast",
                               "--with-labels", "--range", "0:0.7"] + files)
        assert r.wait(120) == 0, h.log("replay")
        metrics = os.path.join(h.work, "metrics.jsonl")
        coord = h.spawn("coordinator", [h.bin("coordinator/fedmq-coordinator"), "--broker", broker,
                                        "--rounds", str(ROUNDS), "--expected-agents",
                                        str(len(agents)), "--min-participants", str(len(agents)),
                                        "--deadline", "1", "--republish", "2", "--test-from",
                                        "0.7", "--metrics-file", metrics]
                        + sum([["--test", f] for f in files], []))

        # round 0 stalls: two agents sent their statistics, the third never saw the model
        wait_for(lambda: "deadline passed with 2 of 3" in h.log("coordinator"), 60,
                 "round 0 past its deadline with 2 of 3")
        assert "adopted" not in h.log("agent-" + cut), h.log("agent-" + cut)
        stage("mute")
        # the coordinator's republish reaches it now: it adopts v1 and sends its statistics,
        # which the broker drops
        wait_for(lambda: "sent statistics" in h.log("agent-" + cut), 60,
                 "the cut agent adopting the republished model and sending")
        time.sleep(1.0)  # the first send is out (and dropped) before the ACL opens
        assert not os.path.exists(metrics) or not open(metrics).read().strip()
        stage("open")
        assert coord.wait(120) == 0, h.log("coordinator")

        ms = [json.loads(l) for l in open(metrics) if l.strip()]
        print("rounds:", [(m["round"], m["participants"]) for m in ms])
        assert [m["round"] for m in ms] == list(range(ROUNDS + 1)), ms
        assert all(m["participants"] == len(agents) for m in ms), ms
        assert all(m["rejected"]["duplicate"] == 0 for m in ms), ms[-1]["rejected"]
        clog, alog = h.log("coordinator"), h.log("agent-" + cut)
        assert "round 0 open for" in clog and "publishing v1 again" in clog, clog
        assert "no receipt after 2 s: sending update" in alog, alog
        print("coordinator published v1 again %d time(s); the cut agent resent %d time(s)" %
              (clog.count("publishing v1 again"), alog.count("no receipt after")))
        # each agent's update for each version applied exactly once (receipt "applied")
        applied = {}
        for m in h.messages(bus):
            if "/receipt/" in m["topic"]:
                r = json.loads(m["text"])
                if r["status"] == "applied":
                    key = (m["topic"].rsplit("/", 1)[1], r["version"])
                    applied[key] = applied.get(key, 0) + 1
        want = {(s, v): 1 for s in agents for v in range(1, ROUNDS + 2)}
        assert applied == want, applied
        assert all(p.poll() is None for n, p, _ in h.procs if n.startswith("agent-"))
    print("integration_lost: passed")


if __name__ == "__main__":
    main()
