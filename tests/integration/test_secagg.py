"""Integration: secure aggregation over MQTT (secure_agg; core/include/fedmq/secagg.h, the
coordinator's stages in coordinator/coord_secagg.c), the ten-agent fleet of fleet.py.

  1. Over the production broker (TLS, per-agent certificates, the fedmq plugin, which must let
     the secagg topics through and nothing else): two agents drop out of every round, one
     after sending its shares (its pairwise masks must be recovered from the others' shares)
     and one after its masked update (its self-mask must be removed from t answers). Every
     round closes, the coordinator's metrics show a roster of 10, 9 vectors summed, the
     masked-u32 codec; the final F1 is within 2 points of the same fleet aggregated in the
     clear with the same equal weights (weighting uniform, robust none).
  2. On a plain broker, an eavesdropper on the update topics (what a curious coordinator
     sees): every update is masked-u32 and looks uniform (under 5% of its words are small as
     int32, against all of them for a change in clear fixed point); the statistics round is
     masked too (a 321-value vector, no moments in clear).
  3. A lying agent (test mode secagg-forge) sends shares nobody can open and drops out: it
     fails one round at most, is left out of later rosters (`blamed`), and every training round
     after closes with the others' sum.
  4. A round that cannot reach its threshold (secagg_min above the fleet) fails: it reveals
     nothing, the model stays, the metrics say why, and the coordinator keeps running.
--part sim runs instead the seven-capture federation in fedmq-sim (the same coordinator and
agent code over the in-process bus) with secure_agg, for the sanitizer builds: every round
sums all seven agents and the final F1 is within 2 points of the clear equal-weight run."""
import json
import subprocess
import tempfile
import time
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet  # noqa: E402
from harness import parse_args  # noqa: E402

SECURE = ["--secure-agg", "--robust", "none", "--secagg-timeout", "2"]


def sim(a):
    data = os.path.join(a.source, "data", "iot23")
    files = sorted(f for f in os.listdir(data) if "conn" in f)
    f1 = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("weighting=uniform", "secure_agg=true"):
            m = os.path.join(tmp, mode + ".jsonl")
            argv = [os.path.join(a.build, "tools", "fedmq-sim")]
            for f in files:
                argv += ["--agent", os.path.join(data, f), "--coord-set",
                         "test=" + os.path.join(data, f)]
            argv += ["--agent-set", "min_train=20", "--coord-set", "rounds=8", "--coord-set",
                     "robust=none", "--coord-set", "eval_max=2000", "--coord-set", mode,
                     "--coord-set", "metrics_file=" + m]
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=600)
            ms = [json.loads(l) for l in open(m)]
            assert [x["phase"] for x in ms] == ["stats"] + ["train"] * 8, [x["phase"] for x in ms]
            if mode.startswith("secure"):
                for x in ms:
                    assert x["secagg"]["stage"] == "done" and x["secagg"]["summed"] == 7, x["secagg"]
                    assert x["codec"] == "masked-u32" or x["phase"] == "stats", x["codec"]
            f1[mode] = ms[-1]["f1"]
    print("integration_secagg_sim: clear %.4f, secure %.4f" % tuple(f1.values()))
    assert f1["secure_agg=true"] >= f1["weighting=uniform"] - 0.02, f1


def main():
    a = parse_args(("--part", {"default": "fleet"}))
    if a.part == "sim":
        return sim(a)

    def run(**kw):
        t0 = time.monotonic()
        m = fleet.run(a.build, a.source, a.mosquitto, **kw)
        m["wall_s"] = time.monotonic() - t0
        print("  %-60s F1 %.4f rounds %d %.0f s secagg %s" % (
            {k: v for k, v in kw.items() if k != "coordinator_args"}, m["f1"],
            m["rounds_closed"], m["wall_s"], m.get("secagg")), flush=True)
        return m

    rounds = 5
    clear = run(rounds=rounds, secure=True, robust="none",
                coordinator_args=["--weighting", "uniform"])
    assert clear["rounds_closed"] == rounds and math.isfinite(clear["f1"]), clear
    drops = {6: ["--secagg-drop", "shares"], 7: ["--secagg-drop", "masked"]}
    m = run(rounds=rounds, secure=True, coordinator_args=SECURE, agent_args=drops, timeout=300)
    assert not m["timed_out"] and m["rounds_closed"] == rounds, m
    sa = m["secagg"]
    assert sa["stage"] == "done" and sa["roster"] == 10 and sa["shared"] == 10, sa
    assert sa["masked"] == 9 and sa["summed"] == 9 and sa["rounds_failed"] == 0, sa
    assert m["codec"] == "masked-u32" and m["model_finite"], m
    assert m["f1"] >= clear["f1"] - 0.02, ("secure aggregation costs more than 2 points",
                                          clear["f1"], m["f1"])
    secure_f1 = m["f1"]

    m = run(rounds=2, coordinator_args=SECURE, watch="fedmq/iot23/update/+")
    ups = [x for x in m["watched"] if x.get("kind") == "update"]
    assert ups, "no update seen"
    assert all(u["codec"] == "masked-u32" and not u["stats"] for u in ups), \
        [u for u in ups if u["codec"] != "masked-u32" or u["stats"]][:2]
    assert any(u["dim"] == 321 for u in ups), "the statistics round was not masked"
    assert max(u["words_small"] for u in ups) < 0.05, [u["words_small"] for u in ups]

    m = run(rounds=3, coordinator_args=SECURE, attackers=1, attack="secagg-forge", timeout=300)
    sa = m["secagg"]
    assert not m["timed_out"] and m["rounds_closed"] == 3, m
    assert sa["blamed"] == 1 and sa["rounds_failed"] == 1 and sa["stage"] == "done", sa
    assert sa["roster"] == 9 and sa["summed"] == 9 and m["model_finite"], sa
    assert m["round_s"] < 15, ("a round waited for the left-out agent (deadline 20 s)",
                               m["round_s"])

    m = run(rounds=1, coordinator_args=SECURE + ["--secagg-min", "20", "--deadline", "2"],
            timeout=10)
    assert m["timed_out"], "a round without enough agents must not finish"
    # the statistics round failed and ran again: its metrics say why
    assert m["secagg"]["stage"] == "failed" and m["secagg"]["rounds_failed"] >= 1, m["secagg"]
    assert "secure aggregation" in m["guard"]["reason"], m["guard"]
    print("integration_secagg: passed (clear %.4f, secure with 2 dropouts %.4f)" %
          (clear["f1"], secure_f1))


if __name__ == "__main__":
    main()
