#!/usr/bin/python3
"""External anchors for bench/eval: scikit-learn logistic regression and random forest trained
centrally on the same training records, scored on the same test records (issue 5, experiment 5).
Runs under Debian's python3 with python3-sklearn; never part of the product.

Features are computed here from the raw conn fields, independently of fedmq's featurizer:
log1p of duration, bytes, packets and IP bytes in each direction, missed bytes, history length,
responder port (log1p, and well-known or not), and one-hot proto, service and conn_state.

Input: a JSON file holding a list of {experiment, seed, train: [files], test: [files], extra}.
Output: one JSON line per job and model on stdout (the fields bench/eval's results carry)."""
import json
import math
import sys
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

PROTOS = ["tcp", "udp", "icmp"]
SERVICES = ["-", "dns", "http", "ssl", "dhcp", "ssh", "irc", "ntp"]
STATES = ["S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR",
          "OTH"]
NUM = ["duration", "orig_bytes", "resp_bytes", "missed_bytes", "orig_pkts", "orig_ip_bytes",
       "resp_pkts", "resp_ip_bytes"]


def num(v):
    try:
        x = float(v)
        return x if math.isfinite(x) and x >= 0 else 0.0
    except ValueError:
        return 0.0


def read(path):
    names, X, y = None, [], []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#fields"):
                names = line.split("\t")[1:]
                continue
            if line.startswith("ts|"):
                names = line.split("|")
                continue
            if line.lstrip().startswith("{"):  # Zeek JSON: one object per record
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                label = str(r.get("label", ""))
            elif line.startswith("#") or not line.strip() or names is None:
                continue
            elif "\t" in line:
                fields = line.split("\t")
                tail = fields[-1].split("   ") if "   " in fields[-1] else fields[-2:]
                label = tail[-2] if len(tail) >= 2 else tail[0]
            else:
                fields = line.split("|")
                label = fields[21] if len(fields) > 21 else ""
            if not line.lstrip().startswith("{"):
                r = dict(zip(names, fields))
            r = {k: str(v) for k, v in r.items()}
            port = num(r.get("id.resp_p", "0"))
            row = [math.log1p(num(r.get(k, "0"))) for k in NUM]
            row += [len(r.get("history", "-").strip("-")), math.log1p(port), float(port < 1024)]
            row += [float(r.get("proto") == p) for p in PROTOS]
            row += [float(r.get("service") == s) for s in SERVICES]
            row += [float(r.get("conn_state") == s) for s in STATES]
            X.append(row)
            y.append(1 if "malicious" in label.lower() else 0)
    return X, y


def load(files):
    X, y = [], []
    for f in files:
        a, b = read(f)
        X += a
        y += b
    return np.array(X, dtype=np.float64), np.array(y)


def recall_at_fpr(score, y, fpr=0.01):
    benign = np.sort(score[y == 0])
    if len(benign) == 0 or (y == 1).sum() == 0:
        return -1.0
    thr = benign[min(len(benign) - 1, int(math.floor((1 - fpr) * len(benign))))]
    return float((score[y == 1] > thr).mean())


def main():
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for j in jobs:
        Xtr, ytr = load(j["train"])
        Xte, yte = load(j["test"])
        models = {"sklearn-logreg": make_pipeline(StandardScaler(),
                                                  LogisticRegression(max_iter=2000)),
                  "sklearn-forest": RandomForestClassifier(n_estimators=100, n_jobs=2,
                                                           random_state=j["seed"])}
        for name, m in models.items():
            t0 = time.time()
            if len(set(ytr.tolist())) < 2:
                continue
            m.fit(Xtr, ytr)
            t1 = time.time()
            p = m.predict_proba(Xte)[:, 1]
            lat = time.time() - t1
            pred = p >= 0.5
            tp = int((pred & (yte == 1)).sum())
            fp = int((pred & (yte == 0)).sum())
            fn = int((~pred & (yte == 1)).sum())
            tn = int((~pred & (yte == 0)).sum())
            prec = tp / (tp + fp) if tp + fp else 0.0
            rec = tp / (tp + fn) if tp + fn else 0.0
            rec_out = dict(experiment=j["experiment"], strategy="centralised", model=name,
                           seed=j["seed"], accuracy=(tp + tn) / max(1, len(yte)),
                           precision=prec, recall=rec,
                           f1=2 * prec * rec / (prec + rec) if prec + rec else 0.0,
                           recall_at_1pct_fpr=recall_at_fpr(p, yte),
                           head_recall_at_1pct_fpr=-1, test_flows=int(len(yte)),
                           test_latency_s=lat, train_s=t1 - t0, wall_s=time.time() - t0,
                           per_flow_latency_us=1e6 * lat / max(1, len(yte)))
            rec_out.update(j.get("extra", {}))
            print(json.dumps(rec_out), flush=True)


if __name__ == "__main__":
    main()
