#!/bin/sh
# Generates a private CA and the certificates of a fedmq deployment with the openssl command
# line: the broker's (CN fedmq-broker, valid for localhost, 127.0.0.1 and any --host given) and
# one client certificate per NAME, whose CN is the identity the broker sees (mosquitto's
# use_identity_as_username) and the MQTT client id the fedmq plugin requires. Keys are ECDSA
# P-256, readable by the owner only. Existing files are kept, so rerunning adds new names.
# Usage: deploy/gen-certs.sh DIR [--days N] [--host NAME]... NAME...
#   e.g. deploy/gen-certs.sh /etc/fedmq/tls site-a site-b site-a.sensors site-b.sensors \
#        fedmq-coordinator operator dashboard
#   (an agent per site, each site's sensor feed <site>.sensors, the operator who reads alerts)
set -eu
[ $# -ge 1 ] || { sed -n '2,10p' "$0"; exit 2; }
DIR=$1; shift
DAYS=825
HOSTS=""
NAMES=""
while [ $# -gt 0 ]; do
    case "$1" in
    --days) DAYS=$2; shift 2 ;;
    --host) HOSTS="$HOSTS $2"; shift 2 ;;
    *) NAMES="$NAMES $1"; shift ;;
    esac
done
mkdir -p "$DIR"
umask 077
cd "$DIR"
valid_name() { printf '%s' "$1" | grep -Eq '^[A-Za-z0-9._-]{1,63}$'; }

if [ ! -f ca.key ]; then
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -sha256 -days "$DAYS" -subj "/CN=fedmq-ca" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.crt 2>/dev/null
    echo "gen-certs: CA $DIR/ca.crt"
fi

# sign NAME EXTFILE
sign() {
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
        -days "$DAYS" -extfile "$2" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$2"
}

if [ ! -f fedmq-broker.crt ]; then
    san="DNS:localhost,IP:127.0.0.1"
    for h in $HOSTS; do san="$san,DNS:$h"; done
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
        "$san" > broker.ext
    sign fedmq-broker broker.ext
    echo "gen-certs: broker $DIR/fedmq-broker.crt ($san)"
fi

for n in $NAMES; do
    valid_name "$n" || { echo "gen-certs: '$n' is not a valid fedmq id ([A-Za-z0-9._-], 1-63)" >&2; exit 2; }
    [ "$n" != sensors ] || { echo "gen-certs: the shared 'sensors' identity is gone: name each site's feed <site>.sensors" >&2; exit 2; }
    [ -f "$n.crt" ] && continue
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > "$n.ext"
    sign "$n" "$n.ext"
    echo "gen-certs: client $DIR/$n.crt (CN $n)"
done
# mosquitto runs as its own user in packaged setups: the broker key must be readable by it
chmod 644 ca.crt ./*.crt
