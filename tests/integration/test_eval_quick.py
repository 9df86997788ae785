"""Smoke test of the evaluation command (issues 5 and 14): `bench/eval --quick` runs every
experiment in reduced form, through fedmq-sim and once through the real system, with a
--train/--test new-site experiment (data/iot23 trains; data/more's Somfy honeypot, 44-1 in its
official layout and the test7 capture with a Background flow are the new sites), and writes
results.json and report.md. Asserts that every run carries the fields the issues name and the
figures at the deployed rule; that every new-site and leave-one-capture-out record holds the
new site's confusion matrix, rates, calibration-state breakdown and ranking diagnostics,
consistent with each other and with the file's labels as bench/connlog.py reads them (test7:
322 malicious, 51 benign, 1 Background, unlabelled); that a benign-only capture is held out and
its FPR is in the report's leave-one-capture-out table; that a test file holding a training
capture's flows is marked; that the real and simulated runs of the paper protocol produced the
same global model and the federated MLP beats the paper's F1 on its protocol; and that the
report holds its sections and states where we are worse."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import parse_args, session  # noqa: E402

FIELDS = ["experiment", "strategy", "model", "codec", "seed", "agents", "rounds", "accuracy",
          "precision", "recall", "f1", "recall_at_1pct_fpr", "bytes_up", "bytes_down", "wall_s",
          "command"]
DEPLOYED = ["fpr_deployed", "recall_deployed", "precision_deployed", "f1_deployed",
            "alerts_per_1k_benign"]
SITE = ["test_file", "malicious", "benign", "unlabelled", "judged", "tp", "fp", "tn", "fn",
        "recall_at_1pct_fpr_supervised", "recall_at_1pct_fpr_novelty",
        "recall_at_1pct_fpr_either", "judged_in", "fp_in", "tp_in", "final_state", "coord",
        "file_counts", "labels_agree", "fp_conversations", "fp_conversation_count"] + DEPLOYED
ANCHOR = ["test_file", "malicious", "benign", "unlabelled", "fpr_at_0_5", "recall_at_0_5",
          "fpr_rule_1pct", "recall_rule_1pct", "rule_1pct_threshold", "recall_at_1pct_fpr"]
STATES = ("learning", "calibrated", "recalibrating")
TEST7 = "idps-test7-malicious.conn.log.labeled"
SOMFY = "CTU-Honeypot-Capture-7-1.Somfy-01.conn.log.labeled"
DUP44 = "CTU-IoT-Malware-Capture-44-1.conn.log.labeled"
BENIGN_ONLY = "CTU-Honeypot-Capture-4-1.conn.log.labeled"


def unit(v):
    return v is not None and 0 <= v <= 1


def check_site(r):
    missing = [k for k in SITE if k not in r]
    assert not missing, (missing, r)
    assert r["sim_model"] == r["model"], r
    assert r["labels_agree"], ("fedmq-sim and bench/connlog.py disagree", r["file_counts"], r)
    assert r["tp"] + r["fn"] == r["malicious"] and r["fp"] + r["tn"] == r["benign"], r
    assert r["judged"] == r["malicious"] + r["benign"] + r["unlabelled"], r
    assert sum(r["judged_in"][s] for s in STATES) == r["judged"], r
    assert sum(r["fp_in"][s] for s in STATES) == r["fp"], r
    assert sum(r["tp_in"][s] for s in STATES) == r["tp"], r
    assert r["final_state"] in STATES, r
    top = r["fp_conversations"]  # the largest first, each at most the file's FPs, all of them
    assert len(top) <= 3 and [c["fp"] for c in top] == sorted((c["fp"] for c in top),
                                                               reverse=True), r
    assert sum(c["fp"] for c in top) <= r["fp"] and (r["fp"] == 0) == (not top), r
    if r["fp_conversation_count"] <= 3 and not r["fp_conversations_uncounted"]:
        assert sum(c["fp"] for c in top) == r["fp"], r
    assert all(" -> " in c["conversation"] for c in top), r
    if r["benign"]:
        assert unit(r["fpr_deployed"]), r
        assert abs(r["alerts_per_1k_benign"] - 1000 * r["fpr_deployed"]) < 1e-2, r
        assert abs(r["fpr_deployed"] - r["fp"] / r["benign"]) < 1e-5, r
    if r["malicious"]:
        assert unit(r["recall_deployed"]), r
        assert abs(r["recall_deployed"] - r["tp"] / r["malicious"]) < 1e-5, r
        assert unit(r["recall_at_1pct_fpr"]), r
    else:
        assert r["recall_deployed"] is None and r["recall_at_1pct_fpr"] is None, r
    c = r["coord"]
    assert c["malicious_scored"] <= r["malicious"] and c["benign_scored"] <= r["benign"], c


def main():
    args = parse_args()
    src = args.source
    with session(args, "fedmq-evalq-") as h:
        out = os.path.join(h.work, "out")
        argv = [sys.executable, os.path.join(src, "bench", "eval"), "--quick", "--out", out,
                "--build", args.build, "--mosquitto", args.mosquitto,
                "--only", "paper,noniid,loco,fleet,newsite,anchors",
                "--train", os.path.join(src, "data", "iot23"),
                "--test", os.path.join(src, "data", "more", "iot23"),
                "--test", os.path.join(src, "data", "more", "stratosphere-labelled", TEST7)]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        print(p.stdout[-4000:], p.stderr[-3000:])
        assert p.returncode == 0, p.returncode
        with open(os.path.join(out, "results.json")) as f:
            runs = json.load(f)
        assert isinstance(runs, list) and len(runs) >= 30, len(runs)
        for r in runs:
            missing = [k for k in FIELDS if k not in r]
            assert not missing, (missing, r)
            if r["mode"] != "sklearn":
                missing = [k for k in DEPLOYED if k not in r]
                assert not missing, (missing, r)
        for r in runs:  # every coordinator test set holds benign flows: a deployed FPR
            if r["mode"] in ("sim", "real") and r["experiment"] in ("paper", "noniid", "fleet"):
                assert unit(r["fpr_deployed"]), r
                assert r["rule"] and r["calibration"] is not None, r
        kinds = {r["experiment"] for r in runs}
        assert kinds == {"paper", "noniid", "loco", "fleet", "newsite"}, kinds
        modes = {r["mode"] for r in runs}
        assert {"sim", "real"} <= modes, modes

        # new sites: every model on every test file, with the deployed view
        ns = [r for r in runs if r["experiment"] == "newsite" and r["mode"] == "sim"]
        got = {(r["model"], r["test_file"]) for r in ns}
        want = {(m, f) for m in ("mlp", "giot") for f in (TEST7, SOMFY, DUP44)}
        assert got == want, got
        for r in ns:
            check_site(r)
        for r in ns:
            if r["test_file"] == TEST7:  # data/more/SOURCES.md: 51 / 322 / 1 Background
                assert (r["malicious"], r["benign"], r["unlabelled"]) == (322, 51, 1), r
            if r["test_file"] == SOMFY:
                assert (r["malicious"], r["benign"]) == (0, 130), r
            assert bool(r["also_in_training"]) == (r["test_file"] == DUP44), r
        # leave one capture out: every capture held out, benign-only ones with an FPR
        loco = [r for r in runs if r["experiment"] == "loco" and r["mode"] == "sim"]
        held = {r["test_file"] for r in loco if r["model"] == "mlp"}
        assert len(held) == 7 and BENIGN_ONLY in held, held
        for r in loco:
            check_site(r)
            assert r["heldout"] == r["test_file"], r
        benign_only = [r for r in loco if r["test_file"] == BENIGN_ONLY and r["model"] == "mlp"]
        assert benign_only[0]["malicious"] == 0 and unit(benign_only[0]["fpr_deployed"])
        assert any(r["model"] == "giot" for r in loco), "no GIoT leave-one-capture-out run"

        real = [r for r in runs if r["mode"] == "real"]
        twin = [r for r in runs if r["mode"] == "sim" and r["experiment"] == "paper" and
                r["strategy"] == real[0]["strategy"] and r["model"] == real[0]["model"] and
                r["seed"] == real[0]["seed"]]
        assert twin and twin[0]["model_hash"] == real[0]["model_hash"], (real[0], twin)
        fedavg = twin[0]
        assert fedavg["f1"] > 0.8761, fedavg["f1"]  # the paper's FedAvg server F1
        assert {r["agents"] for r in runs if r["experiment"] == "fleet"} >= {10, 100}

        with open(os.path.join(out, "report.md")) as f:
            report = f.read()
        for section in ("## 1. The paper's protocol", "## 2. Non-IID", "## 3. Unseen",
                        "## 4. New sites", "## 5. Cost as the fleet grows",
                        "## Where we are worse", "0.8761", "deployed FPR"):
            assert section in report, section
        s3 = report[report.index("## 3. Unseen"):report.index("## 4. New sites")]
        s4 = report[report.index("## 4. New sites"):report.index("## 5. Cost")]
        for s in (s3, s4):
            assert "pooled recall" in s and "largest per-file FPR" in s, s
            assert "Printed by `bench/eval" in s and "Diagnostics" in s, s
        # the benign-only capture's row in the MLP table: its FPR, as results.json has it
        mlp3 = s3[s3.index("**MLP"):s3.index("**GIoT")]
        row = next(l for l in mlp3.splitlines() if l.startswith("| " + BENIGN_ONLY))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "0" and cells[4] == "%.4f" % benign_only[0]["fpr_deployed"], cells
        worse = report[report.index("## Where we are worse"):]
        for r in ns + loco:  # every file above the 1% budget is named there
            if r["fpr_deployed"] is not None and r["fpr_deployed"] > 0.01 and r["seed"] == 1:
                assert r["test_file"] in worse, (r["test_file"], worse)
        if "sklearn" in modes:
            assert "## 6. External anchors" in report
            an = [r for r in runs if r["mode"] == "sklearn" and r["experiment"] == "newsite"]
            assert {(r["model"], r["test_file"]) for r in an} == \
                {(m, f) for m in ("sklearn-logreg", "sklearn-forest")
                 for f in (TEST7, SOMFY, DUP44)}, an
            for r in an + [r for r in runs if r["mode"] == "sklearn" and
                           r["experiment"] == "loco"]:
                missing = [k for k in ANCHOR if k not in r]
                assert not missing, (missing, r)
                assert unit(r["fpr_at_0_5"]) and unit(r["fpr_rule_1pct"]), r
                if r["test_file"] == TEST7:  # the Background flow is in no rate
                    assert (r["malicious"], r["benign"], r["unlabelled"]) == (322, 51, 1), r
        print("integration_eval_quick: %d runs, paper FedAvg F1 %.4f, real = sim model %s; "
              "%d new-site and %d leave-one-capture-out records" %
              (len(runs), fedavg["f1"], fedavg["model_hash"], len(ns), len(loco)))
    print("integration_eval_quick: passed")


if __name__ == "__main__":
    main()
