"""Shared by the fault tests (issue 16): a three-agent fleet on the small captures with its
training records replayed, the coordinator's command line, and the checks every fault must pass
(read from what crossed the broker, as fedmq-inspect decoded it): the retained model's version
never goes back within a run, nothing confirmed "applied" is missing from the state any later
coordinator resumed from, and every round completes. Also a raw MQTT publisher (fake agents by
the thousand) and a TCP proxy whose connections can be cut (a flapping link)."""
import json
import os
import re
import socket
import struct
import threading
import time

from harness import site, wait_for

CAPTURES = ["CTU-IoT-Malware-Capture-34-1.conn.log.labeled",
            "CTU-Honeypot-Capture-5-1.conn.log.labeled",
            "CTU-IoT-Malware-Capture-44-1conn.log.labeled.csv"]


class Fleet:
    def __init__(self, h, args, agent_args=None, env=None, watch="fedmq/#", start=3, before=None):
        """Broker, inspector on `watch`, the first `start` of three agents (agent_args: site ->
        extra flags, env: site -> environment), and their training records replayed. before(h),
        if given, runs once the broker is up."""
        self.h, self.args = h, args
        self.broker = h.start_broker()
        self.files = [os.path.join(args.source, "data", "iot23", c) for c in CAPTURES]
        self.sites = [site(os.path.basename(f)) for f in self.files]
        if before:
            before(h)
        self.bus = h.inspect("bus", watch)
        self.agent_args, self.env = agent_args or {}, env or {}
        self.procs = {s: self.agent(s) for s in self.sites[:start]}
        self.wait_online(self.sites[:start])
        self.replay(self.files[:start])
        self.metrics = os.path.join(h.work, "metrics.jsonl")
        self.state = os.path.join(h.work, "coordinator.state")

    def wait_online(self, sites, timeout=30):
        """Until each of these agents published a status (it follows its subscriptions)."""
        wait_for(lambda: set(sites) <= {m["agent"] for m in self.seen("status")}, timeout,
                 "agents %s online" % sites)

    def agent(self, s, tag=""):
        return self.h.spawn("agent-" + s + tag,
                            [self.h.bin("agent/fedmq-agent"), "--broker", self.broker, "--id", s,
                             "--sensors", "sensors/%s/+/conn" % s, "--min-train", "50",
                             "--status-interval", "1"] + self.agent_args.get(s, []),
                            env=self.env.get(s))

    def replay(self, files, tag="", extra=()):
        r = self.h.spawn("replay" + tag, [self.h.bin("tools/fedmq-replay"), "--broker",
                                          self.broker, "--fast", "--with-labels", "--range",
                                          "0:0.7"] + list(extra) + list(files))
        assert r.wait(120) == 0, self.h.log("replay" + tag)

    def coord_argv(self, rounds, *extra, broker=None, state=True):
        return [self.h.bin("coordinator/fedmq-coordinator"), "--broker", broker or self.broker,
                "--rounds", str(rounds), "--metrics-file", self.metrics, "--test-from", "0.7"] + \
            (["--state-file", self.state] if state else []) + \
            sum([["--test", f] for f in self.files], []) + list(extra)

    def rounds(self):
        return self.h.messages(self.metrics) if os.path.exists(self.metrics) else []

    def seen(self, kind=None, topic=None):
        out = []
        for m in self.h.messages(self.bus):
            if kind and m.get("kind") != kind:
                continue
            if topic and not re.fullmatch(topic, m["topic"]):
                continue
            out.append(m)
        return out

    def receipts(self):
        """(agent, receipt) for every receipt seen, in order."""
        return [(m["topic"].rsplit("/", 1)[1], json.loads(m["text"]))
                for m in self.seen("json", r".*/receipt/.*")]

    def globals_(self):
        return self.seen("global")

    def versions(self):
        """Global model versions as they crossed the broker: publishes, not echoes of retained
        copies (the inspector sees each publish once)."""
        return [m["version"] for m in self.globals_()]

    def check_monotonic(self):
        vs = self.versions()
        runs = {m["run"] for m in self.globals_()}
        assert len(runs) == 1, "more than one coordinator run: %s" % runs
        assert vs == sorted(vs), "the model version went back: %s" % vs
        return vs

    def check_confirmed_kept(self, resumed):
        """Every update confirmed "applied" before a restart is in the model that restart
        resumed from: resumed is [(receipts seen when the restart began, version it resumed
        at)]. Returns the newest confirmed model version."""
        rs, top = self.receipts(), 0
        for seen, version in resumed:
            top = max([r["model"] for _, r in rs[:seen] if r.get("status") == "applied"],
                      default=0)
            assert top <= version, "confirmed in v%d, resumed at v%d: lost" % (top, version)
        return top


def resumed_version(log):
    m = re.findall(r"resumed run \S+ at v(\d+)", log)
    return int(m[-1]) if m else 0


# ---- raw MQTT 3.1.1 (for publishing thousands of messages from one connection) ----

def _rem_len(n):
    out = b""
    while True:
        d, n = n % 128, n // 128
        out += bytes([d | (0x80 if n else 0)])
        if not n:
            return out


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def raw_publish(port, msgs, client_id="fedmq-test-raw"):
    """Publishes (topic, payload bytes, retain) at QoS 0 over one plain connection."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    body = _str("MQTT") + bytes([4, 2]) + struct.pack(">H", 30) + _str(client_id)
    s.sendall(bytes([0x10]) + _rem_len(len(body)) + body)
    assert s.recv(4)[:2] == b"\x20\x02", "no CONNACK"
    buf = b""
    for topic, payload, retain in msgs:
        body = _str(topic) + payload
        buf += bytes([0x30 | (1 if retain else 0)]) + _rem_len(len(body)) + body
        if len(buf) > 65536:
            s.sendall(buf)
            buf = b""
    s.sendall(buf + b"\xe0\x00")  # DISCONNECT
    s.close()


def _mp(v):
    """The msgpack subset a status needs: str, non-negative int, float, map."""
    if isinstance(v, dict):
        out = bytes([0x80 | len(v)])
        for k, x in v.items():
            out += _mp(k) + _mp(x)
        return out
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else bytes([0xd9, len(b)])) + b
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    return bytes([v]) if v < 128 else b"\xcf" + struct.pack(">Q", v)


def status_payload(agent, task="iot23", state="online"):
    return _mp({"v": 1, "type": "status", "agent": agent, "task": task, "state": state,
                "model": 0, "flows": 0, "labelled": 0, "buffered": 0, "alerts": 0, "bad": 0,
                "ts": time.time()})


# ---- a link that can be cut ----

class Proxy:
    """A TCP proxy on a free 127.0.0.1 port to the broker; cut() closes every connection it
    carries (the client sees its link drop and reconnects through it)."""

    def __init__(self, port):
        self.up, self.conns, self.lock = port, [], threading.Lock()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
                u = socket.create_connection(("127.0.0.1", self.up), 5)
            except OSError:
                return
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for x in conns:
            try:
                x.shutdown(socket.SHUT_RDWR)
                x.close()
            except OSError:
                pass
        self.cuts += 1

    def close(self):
        self.srv.close()
        self.cut()


def wait_rounds(fleet, n, timeout, what=None):
    return wait_for(lambda: len(fleet.rounds()) >= n, timeout, what or "%d rounds" % n)
