"""Integration (issue 16): an agent frozen (SIGSTOP) while the coordinator runs several rounds
without it; its connection stays up, so the broker queues every model published meanwhile. When
it thaws it must train once, on the newest model, not once per queued model (before, each
queued model cost a training run and a stale upload), and take part again."""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import parse_args, session, wait_for  # noqa: E402
from faultlib import Fleet  # noqa: E402

ROUNDS = 8
FREEZE = 7.0
DEADLINE = 2.0


def main():
    args = parse_args()
    with session(args, "fedmq-catchup-") as h:
        f = Fleet(h, args)
        frozen = f.sites[0]
        coord = h.spawn("coordinator", f.coord_argv(
            ROUNDS, "--deadline", str(DEADLINE), "--min-participants", "2", "--silent-rounds",
            "0", "--republish", "0", state=False))
        wait_for(lambda: len(f.rounds()) >= 2, 60, "round 1")
        p = f.procs[frozen]
        p.send_signal(signal.SIGSTOP)
        before = len(h.log("agent-" + frozen))
        time.sleep(FREEZE)
        newest = max(f.versions())
        queued = newest - max(int(v) for v in re.findall(r"adopted global mlp model v(\d+)",
                                                           h.log("agent-" + frozen)))
        p.send_signal(signal.SIGCONT)
        assert coord.wait(120) == 0, h.log("coordinator")
        after = h.log("agent-" + frozen)[before:]
        sent = [int(v) for v in re.findall(r"sent update #\d+ for v(\d+)", after)]
        wasted = [v for v in sent if v < newest]
        stale = [r for a, r in f.receipts() if a == frozen and r["status"] == "stale"]
        ms = f.rounds()
        print("frozen %.0f s: %d models queued for it (newest v%d); after thawing it trained and "
              "sent for %s (%d on an old model), %d stale receipts; participants %s" %
              (FREEZE, queued, newest, sent, len(wasted), len(stale),
               [m["participants"] for m in ms]))
        assert queued >= 2, "fewer than two models queued: the test proves nothing"
        assert len(wasted) <= 1 and len(stale) <= 1, (wasted, stale)
        assert any(frozen in m["agents"] for m in ms if m["version"] > newest), \
            "the thawed agent did not take part again"
    print("integration_catchup: passed")


if __name__ == "__main__":
    main()
