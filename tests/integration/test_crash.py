"""Integration (issue 16): the coordinator killed inside its commit window, deterministically
(FMQ_TEST_EXIT_AT makes it _exit as kill -9 would, after what it published reached the broker):
once just after the state was saved and before the model went out, once after the model went
out and before any receipt, once after the receipts and before the round's metrics were
written; and an agent killed with SIGKILL mid-round and started again. Nothing is operated by
hand: each restart is the same command line. Asserts that the retained model's version never
goes back, that every update confirmed "applied" is in the state the next coordinator resumed
from, that every round completes with all three agents (training continues, nothing lost,
nothing twice) and that metrics.jsonl holds every round exactly once."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import parse_args, session, wait_for  # noqa: E402
from faultlib import Fleet, resumed_version, wait_rounds  # noqa: E402

ROUNDS = 7
KILLS = ["saved:2", "published:2", "confirmed:2"]  # the point and which pass through it


def main():
    args = parse_args()
    with session(args, "fedmq-crash-") as h:
        f = Fleet(h, args)
        argv = f.coord_argv(ROUNDS, "--expected-agents", "3", "--deadline", "20")
        resumed = []
        for i, point in enumerate(KILLS):
            p = h.spawn("coordinator-%d" % i, argv, env=dict(os.environ, FMQ_TEST_EXIT_AT=point))
            assert p.wait(90) == 70, "coordinator %d did not stop at %s: %s" % (
                i, point, h.log("coordinator-%d" % i))
            seen = len(f.receipts())
            print("killed at %s after %d rounds; versions seen %s" %
                  (point, len(f.rounds()), f.versions()))
            if i == 1:  # an agent dies too, mid-round, and comes back with its records
                victim = f.sites[1]
                f.procs[victim].send_signal(signal.SIGKILL)
                f.procs[victim].wait()
                f.procs[victim] = f.agent(victim, "-again")
                f.replay([f.files[1]], "-again", ["--site", victim])
            resumed.append((seen, i + 1))
        last = h.spawn("coordinator-last", argv)
        assert last.wait(120) == 0, h.log("coordinator-last")
        logs = [h.log("coordinator-%d" % i) for i in range(1, len(KILLS))] + \
            [h.log("coordinator-last")]
        resumed = [(seen, resumed_version(log)) for (seen, _), log in zip(resumed, logs)]
        assert all(v > 0 for _, v in resumed), resumed

        vs = f.check_monotonic()
        top = f.check_confirmed_kept(resumed)
        ms = f.rounds()
        print("resumed at %s; versions on the wire %s; newest confirmed v%d" %
              ([v for _, v in resumed], vs, top))
        assert [m["round"] for m in ms] == list(range(ROUNDS + 1)), [m["round"] for m in ms]
        assert all(m["participants"] == 3 for m in ms), [m["participants"] for m in ms]
        assert vs[-1] == ms[-1]["version"] == ROUNDS + 2, (vs, ms[-1]["version"])
        assert all(m["state"]["durable"] for m in ms)
        applied = [r for _, r in f.receipts() if r["status"] == "applied"]
        print("rounds %s all with 3 agents; %d applied receipts; final F1 %.4f" %
              ([m["round"] for m in ms], len(applied), ms[-1]["f1"]))
        assert sum("wrote the metrics of" in log for log in logs) == len(KILLS), \
            "the metrics of the rounds killed before they were written are not in the file"
    print("integration_crash: passed")


if __name__ == "__main__":
    main()
