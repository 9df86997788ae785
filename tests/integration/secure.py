"""The production broker for integration tests: deploy/gen-certs.sh certificates and
broker-config/mosquitto-prod.conf with the fedmq plugin, exactly as shipped except for the
placeholders, a loopback listener and what a test names in `opts` (plugin_opt_* values).
Secure wraps the identities: mosquitto_pub/sub and fedmq programs with a certificate, and a
minimal MQTT 3.1.1 client over TLS (RawClient) for what the command-line clients cannot do
(UNSUBSCRIBE, $share, a raw SUBACK)."""
import getpass
import os
import socket
import ssl
import struct
import subprocess
import time


def gen_certs(source, tls, names):
    subprocess.run([os.path.join(source, "deploy", "gen-certs.sh"), tls] + list(names),
                   check=True, capture_output=True)


def start_secure_broker(h, tls, plugin, opts=None, conf="mosquitto-prod.conf"):
    """Starts mosquitto from broker-config/<conf> with @TLS@ and @PLUGIN@ filled in; opts maps
    plugin option names to values (a set one replaces the template's line, a new one is
    added)."""
    opts = dict(opts or {})
    opts.setdefault("metrics_interval", "1")

    def edit(text):
        text = text.replace("listener @PORT@", "listener @PORT@ 127.0.0.1")  # loopback only
        text = text.replace("@TLS@", tls).replace("@PLUGIN@", plugin)
        lines = []
        for line in text.splitlines():
            key = line.lstrip("#").split(" ")[0]
            if key.startswith("plugin_opt_") and key[len("plugin_opt_"):] in opts:
                continue
            lines.append(line)
        at = next(i for i, l in enumerate(lines) if l.startswith("plugin "))
        lines[at + 1:at + 1] = ["plugin_opt_%s %s" % kv for kv in sorted(opts.items())]
        return "\n".join(lines) + "\nuser %s\n" % getpass.getuser()  # root drops to this
    env = None
    if os.environ.get("FMQ_SANITIZE") == "1":
        # the plugin is built with AddressSanitizer: its runtime must be loaded first in the
        # (uninstrumented) broker; mosquitto's own allocations are not ours to leak-check
        asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                              text=True).stdout.strip()
        env = dict(os.environ, LD_PRELOAD=asan, ASAN_OPTIONS="detect_leaks=0")
    h.start_broker(conf, edit, env)
    assert "fedmq: plugin loaded" in h.log("mosquitto"), h.log("mosquitto")
    return "ssl://127.0.0.1:%d" % h.port


class Secure:
    def __init__(self, h, tls):
        self.h, self.tls = h, tls

    def cert(self, ident):
        return ["--cafile", os.path.join(self.tls, "ca.crt"),
                "--cert", os.path.join(self.tls, ident + ".crt"),
                "--key", os.path.join(self.tls, ident + ".key")]

    def fmq_tls(self, ident):
        return ["--tls-ca", os.path.join(self.tls, "ca.crt"),
                "--tls-cert", os.path.join(self.tls, ident + ".crt"),
                "--tls-key", os.path.join(self.tls, ident + ".key")]

    def pub(self, ident, topic, file=None, msg=None, client_id=None, cert=True, retain=False,
            qos=1):
        argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.h.port), "-q", str(qos),
                "-i", client_id or ident, "-t", topic]
        argv += self.cert(ident) if cert else ["--cafile", os.path.join(self.tls, "ca.crt")]
        argv += ["-f", file] if file else ["-m", msg or "x"]
        if retain:
            argv.append("-r")
        return subprocess.run(argv, capture_output=True, timeout=60).returncode

    def sub(self, ident, filters, secs, client_id=None, extra=()):
        argv = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.h.port), "-q", "1",
                "-i", client_id or ident, "-v", "-W", str(secs)] + self.cert(ident) + list(extra)
        for f in filters:
            argv += ["-t", f]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, errors="replace")

    def inspect(self, name, ident, *filters):
        path = os.path.join(self.h.work, name + ".jsonl")
        out = open(path, "w")
        p = subprocess.Popen([self.h.bin("tools/fedmq-inspect"), "--broker",
                              "ssl://127.0.0.1:%d" % self.h.port, "--client-id", ident]
                             + self.fmq_tls(ident) + list(filters),
                             stdout=out, stderr=subprocess.DEVNULL, start_new_session=True)
        self.h.procs.append((name, p, out))
        return path

    def raw(self, ident, client_id=None, clean=True):
        return RawClient(self.h.port, self.tls, ident, client_id or ident, clean)


def lines(p):
    out, _ = p.communicate(timeout=60)
    return [l for l in out.splitlines() if l.strip()]


def _varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _str(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


class RawClient:
    """MQTT 3.1.1 over TLS with a client certificate, one packet at a time (OASIS MQTT 3.1.1,
    section 3): CONNECT, SUBSCRIBE, UNSUBSCRIBE, PUBLISH at QoS 0, and reading what comes."""

    def __init__(self, port, tls, ident, client_id, clean=True):
        ctx = ssl.create_default_context(cafile=os.path.join(tls, "ca.crt"))
        ctx.load_cert_chain(os.path.join(tls, ident + ".crt"), os.path.join(tls, ident + ".key"))
        self.s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 10),
                                 server_hostname="localhost")
        self.s.settimeout(10)
        self.mid, self.buf = 1, b""
        var = _str("MQTT") + bytes([4, 0x02 if clean else 0x00]) + struct.pack(">H", 60)
        self._send(0x10, var + _str(client_id))
        t, body = self.packet()
        assert t == 0x20 and body[1] == 0, ("CONNACK", t, body)

    def _send(self, first, body):
        self.s.sendall(bytes([first]) + _varint(len(body)) + body)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def packet(self):
        first = self._read(1)[0]
        n, shift = 0, 0
        while True:
            b = self._read(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return first & 0xF0, self._read(n)

    def subscribe(self, filt, qos=0):
        """Returns the SUBACK return code (0-2 granted, 0x80 refused)."""
        self.mid += 1
        self._send(0x82, struct.pack(">H", self.mid) + _str(filt) + bytes([qos]))
        while True:
            t, body = self.packet()
            if t == 0x90:
                return body[2]

    def unsubscribe(self, filt):
        """True when the broker answers UNSUBACK; the connection stays up either way."""
        self.mid += 1
        self._send(0xA2, struct.pack(">H", self.mid) + _str(filt))
        while True:
            t, _ = self.packet()
            if t == 0xB0:
                return True

    def publish(self, topic, payload, retain=False, qos=0):
        """QoS 1 waits for the PUBACK (the broker acknowledges refused messages too)."""
        if not qos:
            self._send(0x30 | (1 if retain else 0), _str(topic) + payload)
            return
        self.mid += 1
        self._send(0x32 | (1 if retain else 0), _str(topic) + struct.pack(">H", self.mid) + payload)
        while True:
            t, body = self.packet()
            if t == 0x40 and struct.unpack(">H", body[:2])[0] == self.mid:
                return

    def messages(self, secs):
        """Topics and payloads of the PUBLISH packets that arrive within secs."""
        out, end = [], time.time() + secs
        while time.time() < end:
            self.s.settimeout(max(0.05, end - time.time()))
            try:
                t, body = self.packet()
            except (socket.timeout, ssl.SSLError):
                break
            if t == 0x30:
                n = struct.unpack(">H", body[:2])[0]
                out.append((body[2:2 + n].decode(), body[2 + n:]))
        return out

    def close(self):
        try:
            self._send(0xE0, b"")
            self.s.close()
        except OSError:
            pass
