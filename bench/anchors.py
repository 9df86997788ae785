#!/usr/bin/python3
"""External anchors for bench/eval: scikit-learn logistic regression and random forest trained
centrally on the same training records, scored on the same test records (issue 5, experiment 5).
Runs under Debian's python3 with python3-sklearn; never part of the product.

Records and labels are read by bench/connlog.py, the mirror of fedmq's C reader: unlabelled
records (Background, Unknown, '-') are neither trained on nor counted in any rate. Features are
computed here from the raw conn fields, independently of fedmq's featurizer: log1p of duration,
bytes, packets and IP bytes in each direction, missed bytes, history length, responder port
(log1p, and well-known or not), and one-hot proto, service and conn_state.

Each model is judged as a deployed detector would be, two ways: at the threshold 0.5 of its
P(malicious), and at a 1% rule calibrated on training data only: the 99th percentile of the
training benign flows' out-of-fold scores (3-fold stratified cross-validation on the training
set, so that a forest's in-sample scores, near 0 for every flow it memorised, do not set it).
Recall at 1% FPR on the test set itself is a ranking diagnostic, not a deployable figure.

Input: a JSON file holding a list of {experiment, seed, train: [files], test: [files],
per_file, extra}. Output: one JSON line per job and model on stdout, or per job, model and test
file when per_file (the fields bench/eval's results carry)."""
import json
import math
import os
import sys
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from connlog import ConnLog  # noqa: E402

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


def features(r):
    port = num(r.get("id.resp_p", "0"))
    row = [math.log1p(num(r.get(k, "0"))) for k in NUM]
    row += [len(r.get("history", "-").strip("-")), math.log1p(port), float(port < 1024)]
    row += [float(r.get("proto") == p) for p in PROTOS]
    row += [float(r.get("service") == s) for s in SERVICES]
    row += [float(r.get("conn_state") == s) for s in STATES]
    return row


def load(files):
    """Features and labels (1, 0, -1 unlabelled) of every record fedmq reads in files."""
    X, y = [], []
    for f in files:
        c = ConnLog(f)
        X += [features(r) for r in c.records]
        y += c.labels
    return np.array(X, dtype=np.float64).reshape(-1, len(NUM) + 3 + len(PROTOS) +
                                                  len(SERVICES) + len(STATES)), np.array(y)


def recall_at_fpr(score, y, fpr=0.01):
    benign = np.sort(score[y == 0])
    if len(benign) == 0 or (y == 1).sum() == 0:
        return None
    thr = benign[min(len(benign) - 1, int(math.floor((1 - fpr) * len(benign))))]
    return float((score[y == 1] > thr).mean())


def view(alert, y, suffix):
    """FPR, recall, precision and alerts per 1,000 benign flows of alerts on the labelled
    flows (None where nothing is counted), and the confusion matrix."""
    tp = int((alert & (y == 1)).sum())
    fp = int((alert & (y == 0)).sum())
    fn = int((~alert & (y == 1)).sum())
    tn = int((~alert & (y == 0)).sum())
    return {"fpr" + suffix: fp / (fp + tn) if fp + tn else None,
            "recall" + suffix: tp / (tp + fn) if tp + fn else None,
            "precision" + suffix: tp / (tp + fp) if tp + fp else None,
            "alerts_per_1k_benign" + suffix: 1000.0 * fp / (fp + tn) if fp + tn else None,
            "cm" + suffix: dict(tp=tp, fp=fp, tn=tn, fn=fn)}


def rule_1pct(model, X, y, seed):
    """The 99th percentile of the training benign flows' out-of-fold scores, and how it was
    made ('out-of-fold', or 'in-sample' when a class has fewer than 2 training flows)."""
    k = min(3, int((y == 1).sum()), int((y == 0).sum()))
    if k >= 2:
        cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        s, how = cross_val_predict(model, X, y, cv=cv, method="predict_proba")[:, 1], \
            "out-of-fold"
    else:
        s, how = model.predict_proba(X)[:, 1], "in-sample"
    return float(np.quantile(s[y == 0], 0.99, method="higher")), how


def judge(name, j, p, yte, thr, how, lat, fit_s):
    lab = yte >= 0
    pl, yl = p[lab], yte[lab]
    rec = dict(experiment=j["experiment"], strategy="centralised", model=name, seed=j["seed"],
               malicious=int((yl == 1).sum()), benign=int((yl == 0).sum()),
               unlabelled=int((~lab).sum()), test_flows=int(len(yte)),
               rule_1pct_threshold=thr, rule_1pct_from=how,
               recall_at_1pct_fpr=recall_at_fpr(pl, yl), head_recall_at_1pct_fpr=None,
               test_latency_s=lat, train_s=fit_s,
               per_flow_latency_us=1e6 * lat / max(1, len(yte)))
    rec.update(view(pl >= 0.5, yl, "_at_0_5"))
    rec.update(view(pl > thr, yl, "_rule_1pct"))
    cm = rec["cm_at_0_5"]
    prec, recall = rec["precision_at_0_5"] or 0.0, rec["recall_at_0_5"] or 0.0
    rec.update(accuracy=(cm["tp"] + cm["tn"]) / max(1, len(yl)), precision=prec, recall=recall,
               f1=2 * prec * recall / (prec + recall) if prec + recall else 0.0)
    rec.update(j.get("extra", {}))
    return rec


def main():
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for j in jobs:
        Xtr, ytr = load(j["train"])
        keep = ytr >= 0  # unlabelled records teach nothing
        Xtr, ytr = Xtr[keep], ytr[keep]
        tests = [(os.path.basename(t), load([t])) for t in j["test"]] if j.get("per_file") \
            else [(None, load(j["test"]))]
        models = {"sklearn-logreg": make_pipeline(StandardScaler(),
                                                  LogisticRegression(max_iter=2000)),
                  "sklearn-forest": RandomForestClassifier(n_estimators=100, n_jobs=2,
                                                           random_state=j["seed"])}
        for name, m in models.items():
            t0 = time.time()
            if len(set(ytr.tolist())) < 2:
                continue
            m.fit(Xtr, ytr)
            fit_s = time.time() - t0
            thr, how = rule_1pct(m, Xtr, ytr, j["seed"])
            for test_file, (Xte, yte) in tests:
                t1 = time.time()
                p = m.predict_proba(Xte)[:, 1] if len(yte) else np.zeros(0)
                rec = judge(name, j, p, yte, thr, how, time.time() - t1, fit_s)
                rec["wall_s"] = time.time() - t0
                if test_file:
                    rec["test_file"] = test_file
                print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
