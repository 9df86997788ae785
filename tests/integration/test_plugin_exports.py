"""The Mosquitto plugin is a good guest in the broker's process (issue 17): mosquitto loads it
with RTLD_GLOBAL, so every symbol it exports joins the broker's namespace. It must export the
three entry points mosquitto looks up and nothing else (it exported 106-157 fmq_ symbols), take
the topic matcher from the broker (mosquitto_topic_matches_sub, undefined here) and need no
libmosquitto of its own. Read with binutils' nm and readelf from the built module."""
import argparse
import os
import subprocess

ENTRY = {"mosquitto_plugin_version", "mosquitto_plugin_init", "mosquitto_plugin_cleanup"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--source")
    ap.add_argument("--mosquitto")
    a = ap.parse_args()
    so = os.path.join(a.build, "broker-config", "plugin", "fedmq_plugin.so")
    out = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True,
                         check=True).stdout
    defined = {l.split()[-1] for l in out.splitlines() if len(l.split()) == 3}
    print("exported:", sorted(defined))
    assert defined == ENTRY, sorted(defined - ENTRY)[:20]
    undef = subprocess.run(["nm", "-D", "--undefined-only", so], capture_output=True, text=True,
                           check=True).stdout
    assert "mosquitto_topic_matches_sub" in undef, "the plugin carries its own topic matcher"
    dyn = subprocess.run(["readelf", "-d", so], capture_output=True, text=True, check=True).stdout
    needed = [l.split("[")[1].rstrip("]") for l in dyn.splitlines() if "(NEEDED)" in l]
    print("needs:", needed)
    assert not any("mosquitto" in n for n in needed), needed
    print("plugin_exports: passed")


if __name__ == "__main__":
    main()
