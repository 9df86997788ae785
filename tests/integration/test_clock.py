"""Integration (issue 16): agents whose wall clocks are wrong, through Debian's libfaketime
(LD_PRELOAD; only the wall clock is shifted, as an NTP step would, not the monotonic one). One
agent runs 3 h fast for two rounds and is then restarted with its clock corrected: its updates
must still be accepted (sequence numbers are keyed by the coordinator's version, not the clock),
so every later round has all three agents and nothing is refused as a replay. Another agent
runs 3 h slow with network sensing on: its link must not look 3 h slow (send times are on the
coordinator's clock), so it keeps the configured codec."""
import calendar
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import parse_args, session, wait_for  # noqa: E402
from faultlib import Fleet  # noqa: E402

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
ROUNDS = 6


def first_ts(log):
    """The time stamp of a log's first line (fmq_log: ISO 8601, UTC), as seconds."""
    return calendar.timegm(time.strptime(log.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%SZ"))


def shifted(offset):
    return dict(os.environ, LD_PRELOAD=FAKETIME, FAKETIME=offset, FAKETIME_DONT_FAKE_MONOTONIC="1",
                FAKETIME_NO_CACHE="1", ASAN_OPTIONS="verify_asan_link_order=0:" +
                os.environ.get("ASAN_OPTIONS", ""))


def main():
    args = parse_args()
    assert os.path.exists(FAKETIME), "libfaketime is needed (deploy/install-deps.sh)"
    with session(args, "fedmq-clock-") as h:
        fast, _, slow = [s for s in ["CTU-IoT-Malware-Capture-34-1", "CTU-Honeypot-Capture-5-1",
                                     "CTU-IoT-Malware-Capture-44-1"]]
        f = Fleet(h, args, env={fast: shifted("+3h"), slow: shifted("-3h")})
        coord = h.spawn("coordinator", f.coord_argv(ROUNDS, "--expected-agents", "3",
                                                    "--deadline", "10", "--sensing"))
        wait_for(lambda: len(f.rounds()) >= 3, 60, "two training rounds")
        assert "adopted" in h.log("agent-" + fast)
        f.procs[fast].send_signal(signal.SIGTERM)
        assert f.procs[fast].wait(20) == 0
        f.procs[fast] = f.agent(fast, "-corrected")  # the clock is right again
        f.replay([f.files[0]], "-again", ["--site", fast])
        assert coord.wait(120) == 0, h.log("coordinator")
        ms = f.rounds()
        links = {l["agent"]: l for l in ms[-1]["links"]}
        print("rounds %s, participants %s, refused as replays %d; link delay estimates %s s, "
              "plans %d" % ([m["round"] for m in ms], [m["participants"] for m in ms],
                            ms[-1]["rejected"]["replay"],
                            {a: round(l["delay_s"], 3) for a, l in links.items()},
                            ms[-1]["plans"]))
        assert all(m["participants"] == 3 for m in ms), [m["participants"] for m in ms]
        assert ms[-1]["rejected"]["replay"] == 0, ms[-1]["rejected"]
        assert "sent update" in h.log("agent-" + fast + "-corrected")
        skew = {a: first_ts(h.log("agent-" + a)) - first_ts(h.log("coordinator")) for a in
                (fast, slow)}
        print("agent clocks against the coordinator's: %s s" % skew)
        assert skew[fast] > 2.5 * 3600 and skew[slow] < -2.5 * 3600, "libfaketime had no effect"
        assert all(l["delay_s"] < 5 for l in links.values()), links
        assert ms[-1]["plans"] == 0, "a skewed clock got a tailored (lighter) plan"
    print("integration_clock: passed")


if __name__ == "__main__":
    main()
