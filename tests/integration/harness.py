"""Integration harness: a private Mosquitto on a free 127.0.0.1 port with a config generated from
broker-config/mosquitto-dev.conf, fedmq processes with their logs captured, fedmq-inspect as the
observer of what really crossed the broker, and an independent parser of the IoT-23 ground truth
(not the C reader under test). Everything started is stopped in close()."""
import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, what, interval=0.1):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


class Harness:
    def __init__(self, build, source, mosquitto, workdir):
        self.build, self.source, self.mosquitto, self.work = build, source, mosquitto, workdir
        self.procs = []  # (name, Popen, logfile)
        self.port = None

    # ---- processes ----
    def spawn(self, name, argv, env=None):
        log = open(os.path.join(self.work, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                             env=env)
        self.procs.append((name, p, log))
        return p

    def bin(self, rel):
        return os.path.join(self.build, rel)

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def close(self):
        for _, p, log in reversed(self.procs):
            self.stop(p)
            log.close()

    def log(self, name):
        with open(os.path.join(self.work, name + ".log")) as f:
            return f.read()

    # ---- broker ----
    def _run_broker(self, name, env=None):
        self.broker = self.spawn(name, [self.mosquitto, "-c",
                                        os.path.join(self.work, "mosquitto.conf")], env=env)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                assert self.broker.poll() is None, "mosquitto exited: " + self.log(name)
                return False
        wait_for(up, 10, "mosquitto to listen")

    def start_broker(self, conf="mosquitto-dev.conf", edit=None, env=None):
        """Starts mosquitto on a free loopback port from broker-config/<conf> with @PORT@ and
        @DIR@ filled in (edit, if given, changes the text further); returns its tcp:// URI."""
        self.port = free_port()
        with open(os.path.join(self.source, "broker-config", conf)) as f:
            text = f.read()
        if edit:
            text = edit(text)
        text = text.replace("@PORT@", str(self.port)).replace("@DIR@", self.work)
        with open(os.path.join(self.work, "mosquitto.conf"), "w") as f:
            f.write(text)
        self._run_broker("mosquitto", env)
        return "tcp://127.0.0.1:%d" % self.port

    def restart_broker(self, sig=signal.SIGTERM):
        """Stops the broker (SIGTERM: clean; SIGKILL: crash) and starts it again on the same
        port with the same configuration."""
        self.stop(self.broker, sig)
        self._run_broker("mosquitto-%d" % len(self.procs))

    def publish(self, topic, payload=None, file=None, retain=False):
        argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-q", "1", "-t", topic]
        argv += ["-f", file] if file else ["-m", payload]
        if retain:
            argv.append("-r")
        subprocess.run(argv, check=True, timeout=10)

    # ---- observer ----
    def inspect(self, name, *filters):
        path = os.path.join(self.work, name + ".jsonl")
        out = open(path, "w")
        p = subprocess.Popen([self.bin("tools/fedmq-inspect"), "--broker",
                              "tcp://127.0.0.1:%d" % self.port] + list(filters),
                             stdout=out, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append((name, p, out))
        return path

    def wait_online(self, bus, n, timeout=20):
        """Waits until n distinct agents have published a status on the inspector `bus`. An
        agent's first status follows its subscriptions (core/net/mq.c), so records published
        after this reach every agent."""
        wait_for(lambda: len({m["agent"] for m in self.messages(bus)
                              if m.get("kind") == "status"}) >= n, timeout, "%d agents online" % n)

    @staticmethod
    def messages(path):
        """The inspector's complete lines: the last one may still be half written while it
        runs (CI once read a line cut mid-string), so a line without its newline waits."""
        with open(path) as f:
            return [json.loads(line) for line in f if line.endswith("\n") and line.strip()]


def site(capture):
    """The site name fedmq-replay derives from a capture's file name."""
    return os.path.basename(capture).split(".")[0].replace("conn", "").rstrip("-")


def parse_args(*extra):
    """--build, --source, --mosquitto, plus (flag, kwargs) pairs the test adds."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--mosquitto", default="mosquitto")
    for flag, kw in extra:
        ap.add_argument(flag, **kw)
    return ap.parse_args()


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: ")


def print_tails(work):
    """The last 40 lines of every process's log, those with a sanitizer's report first (and the
    report itself, however far from the end it is)."""
    logs = []
    for name in sorted(os.listdir(work)):
        if name.endswith(".log"):
            with open(os.path.join(work, name), errors="replace") as f:
                lines = f.readlines()
            first = next((i for i, l in enumerate(lines)
                          if any(m in l for m in SANITIZER_MARKS)), None)
            logs.append((first is None, name, lines, first))
    for _, name, lines, first in sorted(logs):
        if first is not None:
            print("---- sanitizer report in %s (line %d) ----" % (name, first + 1))
            print("".join(lines[first:first + 60]), end="")
        tail = lines[-40:]
        print("---- last %d lines of %s ----" % (len(tail), name))
        print("".join(tail), end="")


@contextlib.contextmanager
def session(args, prefix):
    """A Harness in a fresh work directory: everything it started is stopped at the end; the
    directory is removed after a pass (kept with FMQ_KEEP=1) and kept, and named, after a
    failure."""
    work = tempfile.mkdtemp(prefix=prefix)
    h = Harness(args.build, args.source, args.mosquitto, work)
    ok = False
    try:
        yield h
        ok = True
    except BaseException:
        # what failed comes first: CI shows only part of a long output
        print("---- failed ----")
        traceback.print_exc(file=sys.stdout)
        raise
    finally:
        h.close()
        if not ok:  # CI keeps no files: the end of every process's log goes to the output
            print_tails(work)
        if ok and not os.environ.get("FMQ_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("logs kept in", work)


def ground_truth(path):
    """uid -> 0/1 from a labelled log, parsed independently of core/data/connlog.c."""
    labels = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or line.startswith("ts|"):
                continue
            line = line.rstrip("\n")
            if "\t" in line:
                fields = line.split("\t")
                tail = fields[-1].split("   ") if "   " in fields[-1] else fields[-2:]
                label = tail[-2] if len(tail) >= 2 else tail[0]
                uid = fields[1]
            else:
                fields = line.split("|")
                label, uid = fields[21], fields[1]
            labels[uid] = 1 if "malicious" in label.lower() else 0
    return labels
