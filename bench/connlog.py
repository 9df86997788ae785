"""The benchmarks' reader of labelled Zeek conn logs, a mirror of the product's C reader
(core/data/connlog.c and fmq_flow_parse_label / fmq_flow_set in core/data/flow.c), so that
bench/eval, its scikit-learn anchors and fedmq score the same records with the same labels.

Layouts (data/iot23/SOURCES.md, data/more/SOURCES.md): Zeek TSV with a #fields header (the
IoT-23 form whose last field joins `tunnel_parents   label   detailed-label` with three spaces,
or separate `label` and `detailed-label` / `detailedlabel` / `det_label` columns), the IoT-23
pipe CSV (`ts|uid|...`, whose split labels are repaired as SOURCES.md says) and Zeek JSON lines.
A Zeek btest baseline's first-line banner is not a record.

Labels by the first word of the label field, as the C reader: `Benign` 0, `Malicious` 1, anything
else (`-`, Background, Unknown, a missing column) -1, unlabelled: such rows are scored as
context but never trained on and left out of every rate and every stratification count.

A record the C reader refuses (wrong field count, a ts that is no time, e.g. a btest-canonified
`XXXXXXXXXX.XXXXXX`, no id.orig_h / id.resp_h, a count or port that is not one) is skipped here
too, and counted with its reason. fedmq-sim reports its own counts for each new site; bench/eval
compares the two and says so where they differ. Standard library only: it runs under the
interpreter bench/eval runs under and under Debian's python3 for bench/anchors.py."""
import calendar
import json
import math
import re
import time

DETAIL_KEYS = ("detailed-label", "detailed_label", "detailedlabel", "det_label")
COUNTS = ("orig_bytes", "resp_bytes", "missed_bytes", "orig_pkts", "orig_ip_bytes", "resp_pkts",
          "resp_ip_bytes")
CMAX = 1 << 52  # core/data/flow.c: counts above 2^52 are not real traffic
ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z?$")
MAXLINE = 8192  # FMQ_CONNLOG_MAXLINE


def label_value(text):
    """1 malicious, 0 benign, -1 unlabelled, by the label's first word (fmq_flow_parse_label)."""
    word = re.split(r"[ \t]", str(text), maxsplit=1)[0].lower()
    return 1 if word == "malicious" else 0 if word == "benign" else -1


def _unset(v):
    return v == "" or v == "-"


def _time(v):
    """The record's time as the C reader takes it, or None."""
    try:
        x = float(v)
        if math.isfinite(x) and x >= 0:
            return x
    except ValueError:
        pass
    m = ISO.match(v)
    if m:
        try:
            return calendar.timegm(time.strptime(v[:19], "%Y-%m-%dT%H:%M:%S")) + \
                float(m.group(7) or 0)
        except ValueError:
            return None
    return None


def check(rec):
    """The reason the C reader would refuse a record (a dict of Zeek field -> text), or None."""
    ts = rec.get("ts")
    if ts is None or _unset(ts):
        return "missing ts, id.orig_h or id.resp_h"
    if _time(ts) is None:
        if len(ts) >= 10 and set(ts) <= set("X."):
            return "ts is canonified (a Zeek test baseline): the record has no time"
        return "ts is not a timestamp"
    for k in COUNTS:
        v = rec.get(k)
        if v is not None and not _unset(v):
            if not re.fullmatch(r"[+]?\d+", v) or int(v) > CMAX:
                return "%s is not a count" % k
    for k in ("id.orig_p", "id.resp_p"):
        v = rec.get(k)
        if v is not None and not _unset(v):
            if not re.fullmatch(r"[+]?\d+", v) or int(v) > 65535:
                return "%s is not a port" % k
    v = rec.get("duration")
    if v is not None and not _unset(v):
        try:
            x = float(v)
            if not math.isfinite(x) or x < 0:
                return "duration is not a non-negative number"
        except ValueError:
            return "duration is not a non-negative number"
    for k in ("local_orig", "local_resp"):
        v = rec.get(k)
        if v is not None and not _unset(v) and v not in ("T", "F", "true", "false"):
            return "%s is not a boolean" % k
    if _unset(rec.get("id.orig_h") or "") or _unset(rec.get("id.resp_h") or ""):
        return "missing ts, id.orig_h or id.resp_h"
    return None


class ConnLog:
    """One file: header lines (kept to write subsets the C reader takes), record lines, each
    record's fields and label, and the records skipped with their reasons."""

    def __init__(self, path):
        self.path = path
        self.header, self.rows, self.records, self.labels = [], [], [], []
        self.skipped = {}  # reason -> rows
        self.layout, self.names, self.joined = None, None, False
        with open(path, errors="replace", newline="") as f:
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        first = True
        for raw in lines:
            line = raw[:-1] if raw.endswith("\r") else raw
            if first and line.startswith("### BTest baseline"):
                self.header.append(raw + "\n")  # btest-diff's banner above the Zeek header
                continue
            if first:
                first = False
                self.layout = ("tsv" if line.startswith("#separator") else
                               "csv" if line.startswith("ts|") else
                               "json" if line.startswith("{") else None)
                if self.layout is None:
                    self.skipped["unrecognised layout: the file is not read"] = len(lines)
                    return
                if self.layout == "csv":
                    self.names = line.split("|")
                    self.header.append(raw + "\n")
                    continue
            if self.layout == "tsv" and line.startswith("#"):
                self.header.append(raw + "\n")
                if line.startswith("#fields\t") and self.names is None:
                    names = line[8:].split("\t")
                    if "   " in names[-1]:
                        self.joined = True
                        names = names[:-1] + names[-1].split("   ")
                    self.names = names
                continue
            if not line:
                continue
            rec, why = self._parse(line)
            if len(raw) + 2 > MAXLINE:  # fgets: the line and its newline in MAXLINE - 1
                why = "line too long"
            if why is None:
                why = check(rec)
            if why is not None:
                self.skipped[why] = self.skipped.get(why, 0) + 1
                continue
            self.rows.append(raw + "\n")
            self.records.append(rec)
            self.labels.append(self._label(rec))

    def _parse(self, line):
        if self.layout == "json":
            try:
                obj = json.loads(line)
            except ValueError:
                return None, "not a JSON object"
            if not isinstance(obj, dict):
                return None, "not a JSON object"
            rec = {}
            for k, v in obj.items():
                if isinstance(v, (list, dict)):
                    continue
                rec[k] = "" if v is None else (("true" if v else "false") if isinstance(v, bool)
                                               else str(v))
            return rec, None
        if self.names is None:
            return None, "no #fields header"
        sep = "\t" if self.layout == "tsv" else "|"
        fields = line.split(sep)
        if self.joined:
            parts = fields[-1].split("   ")
            if len(parts) != 3:
                return None, "last field is not 'tunnel_parents   label   detailed-label'"
            fields = fields[:-1] + parts
        if len(fields) != len(self.names):
            return None, "%d fields, header has %d" % (len(fields), len(self.names))
        rec = dict(zip(self.names, fields))
        if self.layout == "csv" and "   " in rec.get("label", ""):
            # data/iot23/SOURCES.md: "Malicious   X" + detailed "Y" is Malicious, "X-Y" (or X)
            lab, x = rec["label"].split("   ", 1)
            d = next((rec[k] for k in DETAIL_KEYS if k in rec), "")
            rec["label"] = lab
            for k in DETAIL_KEYS:
                if k in rec:
                    rec[k] = x + "-" + d if d and d != "-" else x
        return rec, None

    def _label(self, rec):
        return label_value(rec["label"]) if "label" in rec else -1

    def counts(self):
        return dict(malicious=sum(1 for y in self.labels if y == 1),
                    benign=sum(1 for y in self.labels if y == 0),
                    unlabelled=sum(1 for y in self.labels if y < 0),
                    skipped=sum(self.skipped.values()))
