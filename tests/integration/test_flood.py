"""Integration (issue 16): 1,100 fake agents announce themselves "online" (retained statuses,
more than the coordinator's 1,024-entry agent table) and never send an update. Rounds may wait
for them to their deadline only until they are silent_rounds rounds silent; after that rounds
close as soon as the real agents have sent, and a real agent that joins later, with the table
full of fakes, is taken in (a fake that never sent an update makes room) and trains."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import parse_args, session, wait_for  # noqa: E402
from faultlib import Fleet, raw_publish, status_payload  # noqa: E402

FAKES = 1100
ROUNDS = 6
DEADLINE = 3.0
SILENT = 2


def main():
    args = parse_args()
    with session(args, "fedmq-flood-") as h:
        def fakes(h):
            raw_publish(h.port, [("fedmq/iot23/status/fake-%04d" % i,
                                  status_payload("fake-%04d" % i), True) for i in range(FAKES)])
        f = Fleet(h, args, start=2, before=fakes)
        coord = h.spawn("coordinator", f.coord_argv(
            ROUNDS, "--deadline", str(DEADLINE), "--silent-rounds", str(SILENT), state=False))
        wait_for(lambda: len(f.rounds()) >= SILENT + 1, 60, "the fakes to fall silent")
        late = f.sites[2]
        n = len(f.seen("status"))
        f.procs[late] = f.agent(late)
        wait_for(lambda: late in {m["agent"] for m in f.seen("status")[n:]}, 30, "the late agent")
        f.replay([f.files[2]], "-late", ["--site", late])
        assert coord.wait(90) == 0, h.log("coordinator")
        ms = f.rounds()
        secs = [m["round_s"] for m in ms]
        print("%d fake agents; rounds %s took %s s; silent agents %s; participants %s" %
              (FAKES, [m["round"] for m in ms], ["%.1f" % s for s in secs],
               [m["silent"] for m in ms], [m["participants"] for m in ms]))
        assert all(s >= DEADLINE * 0.9 for s in secs[:SILENT]), "the fakes were not waited for"
        assert all(s < DEADLINE * 0.9 for s in secs[SILENT + 1:]), \
            "rounds still wait for silent agents: %s" % secs
        assert ms[-1]["silent"] >= 1000, ms[-1]["silent"]
        assert late in ms[-1]["agents"] and ms[-1]["participants"] == 3, ms[-1]["agents"]
        assert "too many agents" not in h.log("coordinator")
    print("integration_flood: passed")


if __name__ == "__main__":
    main()
