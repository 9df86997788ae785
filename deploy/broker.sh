# Shell helpers to run a private Mosquitto for the demo: a free loopback port, a generated
# config (broker-config/mosquitto-dev.conf is the template), start, wait until it listens, stop.
# Sourced by deploy/demo.sh; tests/integration has the same in Python.

fmq_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# fmq_broker_start DIR: writes DIR/mosquitto.conf, starts mosquitto, sets FMQ_BROKER_PID/PORT.
fmq_broker_start() {
    dir=$1
    FMQ_BROKER_PORT=$(fmq_free_port)
    sed -e "s/@PORT@/$FMQ_BROKER_PORT/" -e "s|@DIR@|$dir|" \
        "$FMQ_SRC/broker-config/mosquitto-dev.conf" > "$dir/mosquitto.conf"
    mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
    "$mosquitto_bin" -c "$dir/mosquitto.conf" > "$dir/mosquitto.log" 2>&1 &
    FMQ_BROKER_PID=$!
    for _ in $(seq 1 100); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $FMQ_BROKER_PORT), 0.2)" 2>/dev/null; then
            return 0
        fi
        kill -0 "$FMQ_BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "mosquitto did not start; see $dir/mosquitto.log" >&2
    cat "$dir/mosquitto.log" >&2
    return 1
}

fmq_broker_stop() {
    if [ -n "${FMQ_BROKER_PID:-}" ]; then
        kill "$FMQ_BROKER_PID" 2>/dev/null || true
        wait "$FMQ_BROKER_PID" 2>/dev/null || true
    fi
    FMQ_BROKER_PID=""
}
