"""Integration (issue 18, item 1): fedmq-zeek follows a live Zeek conn.log against a real
mosquitto, and nothing written to the log is lost or sent twice:
  - lines appended while it runs, one of them written in two halves (the writer mid-line);
  - a rotation while it runs (conn.log renamed, lines added to the old file just before, a new
    conn.log with its own header);
  - a clean stop (SIGTERM) with lines appended while it is down, then a restart from the
    persisted offset: every record exactly once so far;
  - a crash (SIGKILL) and a rotation while it is down, the new file in Zeek's JSON: the rotated
    file is found again by its inode and read to its end, then the new one; after a crash
    records may come twice (at least once), never missing;
  - the offset file says where it stopped; a corrupt one stops it with a clear error (exit 2).
Every record is checked by its Zeek uid on the broker (fedmq-inspect)."""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import parse_args, session, wait_for  # noqa: E402

SITE = "follow"


def tsv_parts(path):
    header, rows = [], []
    with open(path) as f:
        for line in f:
            (header if line.startswith("#") else rows).append(line)
    return [h for h in header if not h.startswith("#close")], rows


def as_json(row):
    """A TSV row of IoT-23's layout as one Zeek JSON record (the fields the agent needs)."""
    f = row.rstrip("\n").split("\t")
    return json.dumps({"ts": float(f[0]), "uid": f[1], "id.orig_h": f[2], "id.orig_p": int(f[3]),
                       "id.resp_h": f[4], "id.resp_p": int(f[5]), "proto": f[6]}) + "\n"


def uid_of(line):
    return json.loads(line)["uid"] if line.startswith("{") else line.split("\t")[1]


def main():
    args = parse_args()
    with session(args, "fedmq-follow-") as h:
        broker = h.start_broker()
        bus = h.inspect("bus", "sensors/#")
        # the observer is subscribed before anything is published (a probe it must see)
        def probed():
            h.publish("sensors/probe/x/conn", payload='{"uid":"probe"}')
            return any(m["topic"].startswith("sensors/probe/") for m in h.messages(bus))
        wait_for(probed, 30, "the observer's subscription")
        header, rows = tsv_parts(os.path.join(args.source, "data", "iot23",
                                              "CTU-Honeypot-Capture-5-1.conn.log.labeled"))
        logs = os.path.join(h.work, "logs")
        os.mkdir(logs)
        log = os.path.join(logs, "conn.log")
        state = os.path.join(h.work, "zeek.offset")
        written = []  # uids, in order
        rows = iter(rows)

        def append(n, path=log, fmt=lambda r: r):
            with open(path, "a") as f:
                for _ in range(n):
                    line = fmt(next(rows))
                    f.write(line)
                    written.append(uid_of(line))

        def got():
            return [json.loads(m["text"])["uid"] for m in h.messages(bus)
                    if m["topic"].startswith("sensors/%s/" % SITE)]

        def follower(name):
            return h.spawn(name, [h.bin("tools/fedmq-zeek"), "--broker", broker, "--site", SITE,
                                  "--log", log, "--state", state, "--commit-interval", "0.2",
                                  "--poll", "0.05"])

        def wait_all(what):
            wait_for(lambda: set(got()) >= set(written), 60, what)

        with open(log, "w") as f:
            f.writelines(header)
        append(100)
        z = follower("zeek-1")
        wait_all("the first 100 records")
        # 1. appended while running, one line in two halves
        append(150)
        half = next(rows)
        with open(log, "a") as f:
            f.write(half[:40])
            f.flush()
            time.sleep(0.5)  # the follower polls every 50 ms: it sees the half line
            f.write(half[40:])
        written.append(uid_of(half))
        append(49)
        wait_all("300 records, one written in two halves")
        # 2. rotation while running: the old file gets 50 more just before it moves
        append(50)
        os.rename(log, os.path.join(logs, "conn.1.log"))
        with open(log, "w") as f:
            f.writelines(header)
        append(100)
        wait_all("the records of both files around a rotation")
        # 3. a clean stop, lines written while it is down, a restart from the offset
        z.send_signal(signal.SIGTERM)
        assert z.wait(30) == 0, h.log("zeek-1")
        with open(state) as f:
            saved = f.read().split()
        assert saved[:2] == ["fedmq-zeek", "1"] and int(saved[4]) == os.path.getsize(log), saved
        append(100)
        z = follower("zeek-2")
        wait_all("the records written while it was stopped")
        ids = got()
        assert len(ids) == len(set(ids)) == len(written), (len(ids), len(set(ids)), len(written))
        print("follow: %d records so far, each exactly once (a half line, a rotation, a stop)"
              % len(ids))
        # 4. a crash, then a rotation while it is down; the new file is Zeek JSON
        append(60)
        wait_all("60 more")
        z.send_signal(signal.SIGKILL)
        z.wait(10)
        append(40)  # to the file that is about to rotate
        os.rename(log, os.path.join(logs, "conn.2.log"))
        with open(log, "w") as f:
            pass
        append(30, fmt=as_json)
        z = follower("zeek-3")
        wait_all("the rotated file's tail and the new JSON file")
        assert "rotated while stopped" in h.log("zeek-3"), h.log("zeek-3")
        time.sleep(0.5)
        ids = got()
        dup = len(ids) - len(set(ids))
        assert set(ids) == set(written), len(set(written) - set(ids))
        print("follow: %d records written, all %d arrived; after the crash %d came twice"
              % (len(written), len(set(ids)), dup))
        z.send_signal(signal.SIGTERM)
        assert z.wait(30) == 0, h.log("zeek-3")
        # 5. a corrupt offset file: a clear error and exit 2, the file left for the operator
        with open(state, "w") as f:
            f.write("garbage\n")
        z = follower("zeek-4")
        assert z.wait(30) == 2, h.log("zeek-4")
        assert "not a fedmq-zeek offset file" in h.log("zeek-4"), h.log("zeek-4")
    print("integration_follow: passed")


if __name__ == "__main__":
    main()
