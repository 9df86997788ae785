#!/bin/bash
# fedmq demo: installs dependencies, builds, and runs one federated training over MQTT on the
# bundled IoT-23 captures: a private Mosquitto on a free loopback port (unless --broker URI is
# given), one fedmq-agent per capture (non-IID: each sees only its own site), fedmq-replay
# feeding the first 70% of each capture with labels, the coordinator running --rounds rounds and
# scoring each global model on the last 30%, which is then replayed unlabelled so the agents
# score it live and publish alerts. Prints per-round F1 and bytes, then a summary table.
# Usage: deploy/demo.sh [--rounds N] [--broker URI] [--keep DIR] [--no-build]
#                       [--agent-args "--epochs 5 ..."]
set -euo pipefail
FMQ_SRC=$(cd "$(dirname "$0")/.." && pwd)
export FMQ_SRC
ROUNDS=10
BROKER=""
KEEP=""
BUILD=1
AGENT_ARGS=""
COORD_ARGS=""
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --broker) BROKER=$2; shift 2 ;;
    --keep) KEEP=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --agent-args) AGENT_ARGS=$2; shift 2 ;;
    --coordinator-args) COORD_ARGS=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
SECONDS=0

if [ $BUILD = 1 ]; then
    "$FMQ_SRC/deploy/install-deps.sh"
    cmake -S "$FMQ_SRC" -B "$FMQ_SRC/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$FMQ_SRC/build" -j"$(nproc)" >/dev/null
fi
BIN="$FMQ_SRC/build"
. "$FMQ_SRC/deploy/broker.sh"

WORK=${KEEP:-$(mktemp -d /tmp/fedmq-demo.XXXXXX)}
mkdir -p "$WORK"
PIDS=()
# Agents run under /usr/bin/time -v for their peak RSS: signal the agent, not time.
stop_all() {
    for p in "${PIDS[@]}"; do pkill -TERM -P "$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
cleanup() {
    stop_all
    fmq_broker_stop
    if [ -z "$KEEP" ]; then rm -rf "$WORK"; fi
    return 0
}
trap cleanup EXIT

if [ -z "$BROKER" ]; then
    fmq_broker_start "$WORK"
    BROKER="tcp://127.0.0.1:$FMQ_BROKER_PORT"
    echo "demo: started mosquitto on $BROKER (pid $FMQ_BROKER_PID)"
else
    echo "demo: using broker $BROKER"
fi

DATA="$FMQ_SRC/data/iot23"
FILES=("$DATA"/*.labeled "$DATA"/*.csv)
TESTS=()
for f in "${FILES[@]}"; do TESTS+=(--test "$f"); done

"$BIN/tools/fedmq-inspect" --broker "$BROKER" 'fedmq/+/alerts/#' > "$WORK/alerts.jsonl" &
PIDS+=($!)

# One agent per capture; the site name is the capture name, as fedmq-replay derives it.
NAGENTS=0
for f in "${FILES[@]}"; do
    site=$(basename "$f"); site=${site%%.*}; site=${site%conn}; site=${site%-}
    /usr/bin/time -v "$BIN/agent/fedmq-agent" --broker "$BROKER" --id "$site" \
        --sensors "sensors/$site/+/conn" --min-train 50 $AGENT_ARGS \
        > "$WORK/agent-$site.log" 2>&1 &
    PIDS+=($!)
    NAGENTS=$((NAGENTS + 1))
done
sleep 1
for p in "${PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "demo: a process exited at start; logs in $WORK" >&2; tail -n 5 "$WORK"/*.log >&2; exit 1; }
done
echo "demo: $NAGENTS agents started; replaying the first 70% of each capture with labels"
"$BIN/tools/fedmq-replay" --broker "$BROKER" --fast --with-labels --range 0:0.7 \
    --progress 2 "${FILES[@]}"
sleep 1

echo "demo: coordinator: $ROUNDS rounds of FedAvg, test set = last 30% of each capture"
"$BIN/coordinator/fedmq-coordinator" --broker "$BROKER" --rounds "$ROUNDS" \
    --expected-agents "$NAGENTS" --min-participants 1 --deadline 30 --test-from 0.7 \
    "${TESTS[@]}" $COORD_ARGS --summary --metrics-file "$WORK/metrics.jsonl" > "$WORK/summary.txt" 2> "$WORK/coordinator.log" &
COORD=$!
PIDS+=($COORD)
tail -n +1 -f "$WORK/coordinator.log" --pid "$COORD" | grep --line-buffered -E "round|error|warn" &
# After the first training round the agents hold a trained model: play the held-out part to
# them without labels, as live traffic, while the remaining rounds run.
for _ in $(seq 1 600); do
    grep -q '"round":1,' "$WORK/metrics.jsonl" 2>/dev/null && break
    kill -0 "$COORD" 2>/dev/null || break
    sleep 0.2
done
echo "demo: replaying the last 30% of each capture, unlabelled, for live scoring"
"$BIN/tools/fedmq-replay" --broker "$BROKER" --fast --range 0.7:1 --progress 2 "${FILES[@]}"
wait "$COORD" || { echo "demo: coordinator failed" >&2; exit 1; }
sleep 1

stop_all
cat "$WORK/summary.txt"
ALERTS=$(wc -l < "$WORK/alerts.jsonl")
RSS=$(grep -h "Maximum resident set size" "$WORK"/agent-*.log | awk '{print $6}' | sort -n | tail -1)
echo "alerts published by agents: $ALERTS"
if [ "$ALERTS" -gt 0 ]; then
    echo "example alert:"
    head -1 "$WORK/alerts.jsonl" | python3 -c 'import json,sys; m=json.loads(sys.stdin.read()); print(json.dumps(json.loads(m["text"]), indent=1)[:1200])'
fi
echo "agent peak RSS (max over agents): ${RSS:-?} kB"
echo "demo wall time: ${SECONDS} s (work dir $WORK)"
