#!/bin/sh
# One new-site run through fedmq-sim, for A/B checks of a setting: the MLP (or MODEL=giot)
# federated for 10 rounds on every data/iot23 capture but TESTFILE, then TESTFILE joins as a new
# site and is judged at its deployed rule; extra arguments are new-site agent settings.
#   bench/newsite.sh TESTFILE OUTPREFIX [KEY=VALUE]...     (SEED=1 by default; BUILD=build;
#   TRAIN=DIR trains on DIR's captures instead of data/iot23's, TESTFILE still left out)
# e.g. bench/newsite.sh data/more/stratosphere-labelled/idps-ctu-sme-11-*.labeled /tmp/sme \
#        calib_novelty_beyond_cap=false
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
T=$1 O=$2
shift 2
argv=""
for f in "${TRAIN:-$SRC/data/iot23}"/*conn*; do [ "$(realpath "$f")" = "$(realpath "$T")" ] || argv="$argv --agent $f"; done
ns=""
for x in "$@"; do ns="$ns --new-site-set $x"; done
MODEL=${MODEL:-mlp}
extra=""
[ "$MODEL" = giot ] && extra="--coord-set giot_head=true"
# shellcheck disable=SC2086
"${BUILD:-$SRC/build}/tools/fedmq-sim" $argv --agent-set min_train=20 --agent-set seed="${SEED:-1}" \
    --coord-set calib_round=true --coord-set rounds=10 --coord-set seed="${SEED:-1}" \
    --coord-set eval_max=4000 --coord-set strategy=fedavg --coord-set robust=none \
    --coord-set model="$MODEL" $extra --coord-set metrics_file="$O.m.jsonl" --summary "$O.s.json" \
    --new-site "$T" $ns --new-site-trace "$O.trace" >"$O.out" 2>&1
python3 -c "
import json; r = json.load(open('$O.s.json'))['new_sites'][0]
print('%s: FPR %.4f recall %s, FP while learning/calibrated/recalibrating %s' % (r['test_file'],
      r['fpr_deployed'], '%.3f' % r['recall_deployed'] if r['malicious'] else '-', list(r['fp_in'].values())))"
