"""Integration (issue 16): the coordinator's disk fills up mid-run. The state file lives on a
small tmpfs in a private mount namespace (the test re-runs itself under `unshare --mount`);
where it cannot mount one it makes saves fail with the FMQ_TEST_SAVE_FAIL hook instead. The
coordinator must stop confirming and say so (status topic "blocked", the error, metrics), must
not publish a version it could not save, must survive a kill -9 while blocked and, once space is
back, go on by itself. Asserts that the retained version never goes back, that no update is
confirmed while nothing can be saved, that everything confirmed is in the state the restarted
coordinator resumed from, and that every round completes with all three agents."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import parse_args, session, wait_for  # noqa: E402
from faultlib import Fleet, resumed_version  # noqa: E402

ROUNDS = 30


def private_mounts():
    """Re-executes this test in its own mount namespace (mounts vanish with it); returns True
    when already inside one, False when that is impossible here."""
    if os.environ.get("FMQ_MOUNT_NS") == "1":
        return True
    cmd = ["unshare", "--mount"] if os.geteuid() == 0 else \
        ["unshare", "--user", "--map-root-user", "--mount"]
    try:
        if subprocess.run(cmd + ["true"], capture_output=True, timeout=10).returncode != 0:
            return False
    except (OSError, subprocess.TimeoutExpired):
        return False
    sys.stdout.flush()
    os.execvpe(cmd[0], cmd + [sys.executable] + sys.argv, dict(os.environ, FMQ_MOUNT_NS="1"))


def status(f):
    return [json.loads(m["text"]) for m in f.seen("json", r"fedmq/iot23/coordinator")]


def main():
    ns = not os.environ.get("FMQ_DISK_HOOK") and private_mounts()  # FMQ_DISK_HOOK=1: the hook
    args = parse_args()
    with session(args, "fedmq-disk-") as h:
        disk = os.path.join(h.work, "disk")
        os.mkdir(disk)
        tmpfs = ns and not os.environ.get("FMQ_DISK_HOOK") and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", disk],
                                      capture_output=True).returncode == 0
        flag = os.path.join(h.work, "disk-full")
        env = dict(os.environ, FMQ_TEST_SAVE_FAIL=flag)
        print("full disk by %s" % ("a 256 kB tmpfs" if tmpfs else "the FMQ_TEST_SAVE_FAIL hook"))
        try:
            f = Fleet(h, args)
            f.state = os.path.join(disk, "coordinator.state")
            argv = f.coord_argv(ROUNDS, "--expected-agents", "3", "--deadline", "20")
            first = h.spawn("coordinator-1", argv, env=env)
            wait_for(lambda: len(f.rounds()) >= 2, 60, "two rounds")
            filler = os.path.join(disk, "filler")
            if tmpfs:
                fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    while os.write(fd, b"\0" * 4096) > 0:
                        pass
                except OSError:
                    pass
                os.close(fd)
            else:
                open(flag, "w").close()
            wait_for(lambda: any(s["state"] == "blocked" for s in status(f)), 30, "blocked")
            held = [s for s in status(f) if s["state"] == "blocked"][-1]
            mark = len(f.receipts())
            time.sleep(2)  # agents keep sending; nothing may be confirmed or published
            late = [r for _, r in f.receipts()[mark:] if r["status"] == "applied"]
            assert not late, "confirmed while the state could not be saved: %s" % late
            assert max(f.versions()) == held["version"], (f.versions(), held)
            print("blocked at v%d (v%d held): %s" % (held["version"], held["held_version"],
                                                     held["error"]))
            assert held["held_version"] == held["version"] + 1 and held["error"], held
            first.send_signal(signal.SIGKILL)  # and a crash while blocked
            first.wait()
            seen = len(f.receipts())
            n_status = len(status(f))
            second = h.spawn("coordinator-2", argv, env=env)
            wait_for(lambda: any(s["state"] == "blocked" for s in status(f)[n_status:]), 30,
                     "blocked again after the restart")
            assert max(f.versions()) == held["version"], "published a version it could not save"
            if tmpfs:
                os.unlink(filler)
            else:
                os.unlink(flag)
            assert second.wait(120) == 0, h.log("coordinator-2")
            resumed = resumed_version(h.log("coordinator-2"))
            vs = f.check_monotonic()
            f.check_confirmed_kept([(seen, resumed)])
            ms = f.rounds()
            assert [m["round"] for m in ms] == list(range(ROUNDS + 1)), [m["round"] for m in ms]
            assert all(m["participants"] == 3 for m in ms), [m["participants"] for m in ms]
            waited = [m for m in ms if m["state"]["blocked_s"] > 0]
            assert waited and waited[-1]["state"]["save_failures"] > 0, "metrics do not say so"
            assert status(f)[-1]["state"] == "running", status(f)[-1]
            print("resumed at v%d; versions never back (last v%d); round %d waited %.1f s for "
                  "its save (%d failed saves); all %d rounds with 3 agents" %
                  (resumed, vs[-1], waited[-1]["round"], waited[-1]["state"]["blocked_s"],
                   waited[-1]["state"]["save_failures"], ROUNDS))
        finally:
            if tmpfs:
                subprocess.run(["umount", "-l", disk])
    print("integration_disk: passed")


if __name__ == "__main__":
    main()
