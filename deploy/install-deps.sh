#!/bin/sh
# Installs fedmq's build and test dependencies from Debian 12's archive. Idempotent: it asks
# apt-get only for what is missing, so a second run changes nothing.
set -eu
PKGS="build-essential cmake pkg-config libpaho-mqtt-dev libmsgpack-dev libssl-dev libcunit1-dev
mosquitto mosquitto-dev libmosquitto-dev mosquitto-clients openssl clang libclang-rt-14-dev python3
procps time valgrind gnuplot-nox python3-sklearn libfaketime util-linux libsystemd-dev systemd
dpkg-dev file libcjson-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
