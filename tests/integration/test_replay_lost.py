"""Integration (issue 16): fedmq-replay counts what the broker confirmed (QoS 1 PUBACKs), not
what it handed to the MQTT library. A clean replay is confirmed whole and exits 0; a replay whose
broker is killed for good half way exits 1 within --confirm-timeout and says how many flows were
not confirmed (before, it printed "published N of N" and exited 0)."""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import parse_args, session  # noqa: E402

CAPTURE = "CTU-IoT-Malware-Capture-34-1.conn.log.labeled"


def confirmed(log):
    m = re.search(r"published (\d+) of (\d+) flows .* the broker confirmed (\d+)", log)
    assert m, log
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def main():
    args = parse_args()
    with session(args, "fedmq-replay-") as h:
        broker = h.start_broker()
        f = os.path.join(args.source, "data", "iot23", CAPTURE)
        base = [h.bin("tools/fedmq-replay"), "--broker", broker, "--confirm-timeout", "2"]
        r = h.spawn("replay-clean", base + ["--fast", "--range", "0:0.2", f])
        assert r.wait(60) == 0, h.log("replay-clean")
        sent, total, ok = confirmed(h.log("replay-clean"))
        print("clean: %d of %d flows published, %d confirmed, exit 0" % (sent, total, ok))
        assert sent == total == ok

        r = h.spawn("replay-cut", base + ["--speed", "20000", "--range", "0:0.7", f])
        time.sleep(1.0)
        h.stop(h.broker, signal.SIGKILL)  # and it never comes back
        t0 = time.time()
        rc = r.wait(60)
        sent, total, ok = confirmed(h.log("replay-cut"))
        print("broker killed mid-way: %d of %d flows handed over, %d confirmed, exit %d after "
              "%.1f s" % (sent, total, ok, rc, time.time() - t0))
        assert rc == 1, h.log("replay-cut")
        assert ok < total and "not confirmed by the broker" in h.log("replay-cut")
    print("integration_replay_lost: passed")


if __name__ == "__main__":
    main()
