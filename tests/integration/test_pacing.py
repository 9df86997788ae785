"""Integration: always-on pacing (issue 18). With `round_interval`, a training round closes no
sooner than that many seconds after it opened, however fast its updates arrive: without it an
always-on fleet ran 638 rounds in 108 s on unchanged data. Two agents and a coordinator over a
real mosquitto (faultlib.Fleet), round_interval 5 s: every training round's metrics come at least
5 s after the previous model went out (round_s, measured by the coordinator), every round still
holds both agents' updates (paced, not starved), an interval longer than the deadline does not
make the round late (no republishing before it), and rounds without pacing show the test can
tell the difference; in those fast rounds agents still send their status at status_interval, not
with every round (issue 18: 638 rounds in 108 s, a status from each agent every round)."""
import os
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import parse_args, session  # noqa: E402
from faultlib import Fleet  # noqa: E402

INTERVAL = 5.0
FREE_ROUNDS = 30
STATE_GAP = 1.0  # an agent's calibration state change may send a status this soon after one


def main():
    args = parse_args()
    with session(args, "fedmq-pacing-") as h:
        f = Fleet(h, args, start=2)

        def run(name, rounds, interval, deadline=30, *extra):
            f.metrics = os.path.join(h.work, name + ".jsonl")
            c = h.spawn(name, f.coord_argv(rounds, "--expected-agents", "2", "--deadline",
                                           str(deadline),
                                           "--round-interval", str(interval),
                                           "--calib-round=false", *extra, state=False))
            assert c.wait(120) == 0, h.log(name)
            return [m for m in f.rounds() if m["phase"] == "train"]
        paced = run("paced", 2, INTERVAL)
        print("paced rounds:", [(m["round"], m["participants"], m["round_s"]) for m in paced])
        assert len(paced) == 2, paced
        assert all(m["round_s"] >= INTERVAL and m["participants"] == 2 for m in paced), paced
        # an interval longer than the deadline: the round is not late before the interval (no
        # republishing of the model, which makes agents resend) and still holds both agents
        held = run("held", 1, INTERVAL, 1, "--republish", "1")
        print("held round:", [(m["round"], m["participants"], m["round_s"]) for m in held])
        assert held and held[0]["round_s"] >= INTERVAL and held[0]["participants"] == 2, held
        assert "publishing v" not in h.log("held"), h.log("held")
        # unpaced: rounds much faster than the agents' status_interval (5 s), and statuses
        # still come at that interval, not with every round (a calibration state change may come
        # sooner, at most once a second: the bound allows one a second)
        before = Counter(m["agent"] for m in f.seen("status"))
        t0 = time.time()
        free = run("free", FREE_ROUNDS, 0)
        elapsed = time.time() - t0
        time.sleep(0.5)  # the inspector's last lines
        sent = Counter(m["agent"] for m in f.seen("status")) - before
        print("unpaced rounds:", [(m["round"], m["participants"], m["round_s"]) for m in free])
        print("statuses per agent over %.1f s of %d rounds: %s" % (elapsed, len(free),
                                                                  dict(sent)))
        assert len(free) == FREE_ROUNDS and all(m["round_s"] < INTERVAL for m in free), free
        assert sent and all(n <= elapsed / STATE_GAP + 2 for n in sent.values()), (sent, elapsed)
        assert elapsed / STATE_GAP + 2 < FREE_ROUNDS, elapsed  # one status a round would fail
    print("integration_pacing: passed")


if __name__ == "__main__":
    main()
