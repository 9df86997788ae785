"""Integration: a full federated round (statistics round and two training rounds, live scoring
and an alert path) with the agent and the coordinator under valgrind memcheck. Asserts zero
memory errors and zero definitely or indirectly lost bytes in both (valgrind exits 99 otherwise),
and that the rounds completed."""
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import parse_args, session, wait_for  # noqa: E402

CAPTURE = "CTU-IoT-Malware-Capture-44-1conn.log.labeled.csv"
VG = ["valgrind", "--tool=memcheck", "--error-exitcode=99", "--leak-check=full",
      "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
      "--track-origins=yes"]


def main():
    args = parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed (deploy/install-deps.sh installs it)")
    with session(args, "fedmq-vg-") as h:
        broker = h.start_broker()
        f = os.path.join(args.source, "data", "iot23", CAPTURE)
        agent = h.spawn("agent", VG + [h.bin("agent/fedmq-agent"), "--broker", broker, "--id",
                                       "site", "--sensors", "sensors/site/+/conn", "--min-train",
                                       "50", "--status-interval", "1"])
        bus = h.inspect("bus", "fedmq/iot23/status/site")
        wait_for(lambda: h.messages(bus), 120, "the agent under valgrind to come online")
        r = h.spawn("replay", [h.bin("tools/fedmq-replay"), "--broker", broker, "--fast",
                               "--with-labels", "--site", "site", "--range", "0:0.7", f])
        assert r.wait(120) == 0, h.log("replay")
        metrics = os.path.join(h.work, "metrics.jsonl")
        coord = h.spawn("coordinator", VG + [h.bin("coordinator/fedmq-coordinator"), "--broker",
                                             broker, "--rounds", "2", "--expected-agents", "1",
                                             "--deadline", "120", "--test", f,
                                             "--metrics-file", metrics])
        rc = coord.wait(600)
        r = h.spawn("replay-live", [h.bin("tools/fedmq-replay"), "--broker", broker, "--fast",
                                    "--site", "site", "--range", "0.7:1", f])
        assert r.wait(120) == 0, h.log("replay-live")
        rca = h.stop(agent, timeout=120)
        for name, code in (("coordinator", rc), ("agent", rca)):
            log = h.log(name)
            summary = re.search(r"ERROR SUMMARY: (\d+) errors", log)
            lost = re.findall(r"(definitely|indirectly) lost: ([\d,]+) bytes", log)
            print("%s under memcheck: exit %s, %s errors, lost %s" %
                  (name, code, summary.group(1) if summary else "?", lost or "none"))
            assert code == 0 and summary and summary.group(1) == "0", log[-3000:]
        with open(metrics) as fm:
            ms = [json.loads(l) for l in fm if l.strip()]
        assert [m["round"] for m in ms] == [0, 1, 2], ms
    print("integration_valgrind: passed")


if __name__ == "__main__":
    main()
