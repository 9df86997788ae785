"""Integration (issue 17): the daemons behave as services against a real mosquitto.
--part sigterm: SIGTERM stops the agent and the coordinator promptly (within 5 s, exit 0) in
  every connection state: the broker not up yet (they keep retrying, say why each attempt failed,
  and a SIGHUP does not kill them), connected (the agent's last status says "offline"), and the
  broker gone after connecting; a stop with a backlog scores what the agent's client already
  acknowledged and leaves the rest to the next run (every record counted once over both); an agent started before its broker connects once it comes up;
  the coordinator prints no round table on exit.
--part sighup: with log_file and metrics_file set, SIGHUP after logrotate-style renames makes
  both daemons reopen them (new files, the next round's metrics in the new one) and keep running;
  through $NOTIFY_SOCKET they report READY=1, STATUS=, WATCHDOG=1, RELOADING=1 and STOPPING=1
  (when built with libsystemd)."""
import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import parse_args, session, wait_for  # noqa: E402
from faultlib import Fleet  # noqa: E402

PROMPT = 5.0  # seconds a stop may take: generous, the daemons poll their flag every 0.5 s


def stop_promptly(h, p, what, sig=signal.SIGTERM):
    t0 = time.time()
    p.send_signal(sig)
    try:
        rc = p.wait(PROMPT)
    except Exception:
        raise AssertionError("%s ignored SIGTERM for %.0f s" % (what, PROMPT))
    took = time.time() - t0
    assert rc == 0, "%s exited %s after SIGTERM" % (what, rc)
    print("%s: stopped in %.2f s, exit 0" % (what, took))


def count(h, name, text):
    return h.log(name).count(text)


def sigterm(args):
    with session(args, "fedmq-sigterm-") as h:
        agent = h.bin("agent/fedmq-agent")
        coord = h.bin("coordinator/fedmq-coordinator")
        capture = os.path.join(args.source, "data", "iot23",
                               "CTU-IoT-Malware-Capture-20-1conn.log.labeled.csv")
        # 1. the broker is not up yet: retries with reasons, survives SIGHUP, stops at once
        port = harness.free_port()
        uri = "tcp://127.0.0.1:%d" % port
        a = h.spawn("agent-early", [agent, "--broker", uri, "--id", "early", "--reconnect-max",
                                    "2"])
        c = h.spawn("coordinator-early", [coord, "--broker", uri, "--reconnect-max", "2"])
        for name in ("agent-early", "coordinator-early"):
            wait_for(lambda: count(h, name, "cannot connect to " + uri) >= 3, 30,
                     "%s to retry three times" % name)
            log = h.log(name)
            assert "Paho code" in log and "retrying in" in log, log
        a.send_signal(signal.SIGHUP)
        c.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert a.poll() is None and c.poll() is None, "SIGHUP killed a daemon while connecting"
        stop_promptly(h, a, "agent (broker not up)")
        stop_promptly(h, c, "coordinator (broker not up)")

        # 2. started before its broker: connects when the broker comes up
        late_port = harness.free_port()
        late = h.spawn("agent-late", [agent, "--broker", "tcp://127.0.0.1:%d" % late_port,
                                      "--id", "late", "--reconnect-max", "1",
                                      "--status-interval", "1"])
        wait_for(lambda: count(h, "agent-late", "cannot connect") >= 1, 30, "a failed attempt")
        real_free_port = harness.free_port
        harness.free_port = lambda: late_port
        try:
            broker = h.start_broker()
        finally:
            harness.free_port = real_free_port
        bus = h.inspect("bus", "fedmq/#")
        wait_for(lambda: "failed attempt(s)" in h.log("agent-late"), 30,
                 "the late agent to connect")
        wait_for(lambda: any(m.get("agent") == "late" and m.get("state") == "online"
                             for m in h.messages(bus)), 30, "the late agent online")
        c = h.spawn("coordinator", [coord, "--broker", broker, "--rounds", "0"])
        wait_for(lambda: "connected to" in h.log("coordinator"), 30, "coordinator connected")

        # 3. connected: SIGTERM, and the agent's last word is "offline"
        stop_promptly(h, late, "agent (connected)")
        wait_for(lambda: [m.get("state") for m in h.messages(bus)
                          if m.get("agent") == "late"][-1:] == ["offline"], 10,
                 "the late agent's offline status")

        # 3b. a stop loses nothing received: records pile up while the agent is frozen; on
        # SIGTERM it scores what its client already acknowledged, and what the broker still
        # held goes to the next run of the same id (persistent session): every record counted
        # once over both runs
        def drain_agent(name):
            return h.spawn(name, [agent, "--broker", broker, "--id", "drain", "--sensors",
                                  "sensors/drain/+/conn", "--status-interval", "1"])
        d = drain_agent("agent-drain-1")
        wait_for(lambda: any(m.get("agent") == "drain" and m.get("state") == "online"
                             for m in h.messages(bus)), 30, "the drain agent online")
        os.kill(d.pid, signal.SIGSTOP)
        r = h.spawn("replay-drain", [h.bin("tools/fedmq-replay"), "--broker", broker, "--fast",
                                     "--site", "drain", capture])
        assert r.wait(120) == 0, h.log("replay-drain")
        sent = int(re.search(r"published (\d+) of", h.log("replay-drain")).group(1))
        d.send_signal(signal.SIGTERM)  # delivered on SIGCONT: the stop begins with a backlog
        os.kill(d.pid, signal.SIGCONT)
        assert d.wait(30) == 0, h.log("agent-drain-1")
        first = int(re.search(r"stopped: (\d+) flows", h.log("agent-drain-1")).group(1))
        d = drain_agent("agent-drain-2")
        wait_for(lambda: "connected to" in h.log("agent-drain-2"), 30, "the second run")
        time.sleep(2)
        stop_promptly(h, d, "agent (second run)")
        second = int(re.search(r"stopped: (\d+) flows", h.log("agent-drain-2")).group(1))
        print("drain: %d records sent, %d scored by the stopped run, %d by the next" %
              (sent, first, second))
        assert first > 0 and first + second == sent, (first, second, sent)

        # 4. the broker goes away after connecting
        a = h.spawn("agent-orphan", [agent, "--broker", broker, "--id", "orphan"])
        wait_for(lambda: "connected to" in h.log("agent-orphan"), 30, "orphan agent connected")
        h.stop(h.broker)
        wait_for(lambda: "lost" in h.log("agent-orphan") and "lost" in h.log("coordinator"),
                 30, "the daemons to notice the broker is gone")
        stop_promptly(h, a, "agent (broker gone)")
        stop_promptly(h, c, "coordinator (broker gone)")
        log = h.log("coordinator")  # stdout and stderr
        assert "stopped after" in log, log
        assert "bytes down" not in log and "total:" not in log, \
            "the coordinator printed its round table without --summary: " + log
    print("integration_sigterm: passed")


class NotifySocket:
    """A $NOTIFY_SOCKET as systemd provides one: a datagram socket collecting the messages."""

    def __init__(self, path):
        self.path, self.msgs = path, []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.done = False
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        while not self.done:
            try:
                self.msgs.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass

    def lines(self):
        return [line for m in list(self.msgs) for line in m.split("\n")]

    def close(self):
        self.done = True
        self.th.join()
        self.sock.close()


def with_systemd(build):
    with open(os.path.join(build, "CMakeCache.txt")) as f:
        return any(line.startswith("LIBSYSTEMD_FOUND:") and line.strip().endswith("=1")
                   for line in f)


def sighup(args):
    with session(args, "fedmq-sighup-") as h:
        w = h.work
        alog, clog = os.path.join(w, "agent-file.log"), os.path.join(w, "coord-file.log")
        notify = NotifySocket(os.path.join(w, "notify.sock"))
        env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="400000")
        site = "CTU-IoT-Malware-Capture-34-1"
        f = Fleet(h, args, start=1, agent_args={site: ["--log-file", alog]}, env={site: env})
        agent = f.procs[site]
        coord = h.spawn("coordinator", f.coord_argv(1000, "--min-participants", "1",
                                                    "--expected-agents", "1", "--deadline", "10",
                                                    "--log-file", clog))
        wait_for(lambda: len(f.rounds()) >= 2, 120, "two rounds")
        for p in (alog, clog, f.metrics):  # as logrotate does: move away, then signal
            os.rename(p, p + ".1")
        rounds_before = len(h.messages(f.metrics + ".1"))
        agent.send_signal(signal.SIGHUP)
        coord.send_signal(signal.SIGHUP)
        wait_for(lambda: os.path.exists(alog) and "SIGHUP: reopened log file" in open(alog).read(),
                 10, "the agent to reopen its log file")
        wait_for(lambda: os.path.exists(clog) and "reopened metrics file" in open(clog).read(),
                 10, "the coordinator to reopen its log and metrics files")
        assert "SIGHUP: reopened log file" in open(clog).read()
        wait_for(lambda: len(f.rounds()) >= 1, 120, "a round's metrics in the new metrics file")
        assert agent.poll() is None and coord.poll() is None, "SIGHUP stopped a daemon"
        new = f.rounds()
        print("metrics: %d round(s) before the rename, round %d first in the new file" %
              (rounds_before, new[0]["round"]))
        assert new[0]["round"] >= rounds_before - 1, (rounds_before, new)
        stop_promptly(h, agent, "agent")
        stop_promptly(h, coord, "coordinator")
        assert "stopped:" in open(alog).read()
        notify.close()
        got = notify.lines()
        if not with_systemd(args.build):
            print("SKIP notify checks: built without libsystemd (units are Type=simple)")
        else:
            print("notify messages: %s" % sorted(set(got)))
            assert "READY=1" in got, got
            assert any(x.startswith("STATUS=connected to") for x in got), got
            assert "WATCHDOG=1" in got, got
            i = got.index("RELOADING=1")
            assert "READY=1" in got[i:], got
            assert got[-1] == "STOPPING=1" or "STOPPING=1" in got, got
    print("integration_sighup: passed")


def main():
    args = parse_args(("--part", dict(choices=["sigterm", "sighup"], required=True)))
    sigterm(args) if args.part == "sigterm" else sighup(args)


if __name__ == "__main__":
    main()
