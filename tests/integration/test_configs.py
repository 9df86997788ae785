"""The example configurations in deploy/ pass --check, and configuration errors are reported
with the file, the line and the reason, with exit status 2 and no connection attempt."""
import argparse
import os
import subprocess
import tempfile


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    a = ap.parse_args()
    agent = os.path.join(a.build, "agent", "fedmq-agent")
    coord = os.path.join(a.build, "coordinator", "fedmq-coordinator")
    dep = os.path.join(a.source, "deploy")

    r = run([agent, "--config", os.path.join(dep, "agent.conf.example"), "--check"])
    assert r.returncode == 0 and "config ok: id site-a" in r.stdout, r
    r = run([coord, "--config", os.path.join(dep, "coordinator.conf.example"), "--check"])
    assert r.returncode == 0 and "model mlp (3137 parameters)" in r.stdout, r
    r = run([coord, "--config", os.path.join(dep, "coordinator-prod.conf.example"), "--check"])
    assert r.returncode == 0 and "DP clip 2 noise 1 delta 1e-05 epsilon max 28" in r.stdout, r
    assert "count cap 5 x median" in r.stdout, r

    # strategy parameters override the chosen strategy's Flower defaults in any order
    r = run([coord, "--eta", "0.05", "--strategy", "fedyogi", "--check"])
    assert r.returncode == 0 and "strategy fedyogi" in r.stdout and "eta 0.05 eta_l 0.0316" in r.stdout \
        and "tau 0.001" in r.stdout, r.stdout
    r = run([coord, "--strategy", "fedopt", "--check"])
    assert "uniform weights" in r.stdout and "eta 0.1" in r.stdout, r.stdout
    r = run([coord, "--strategy", "fedsgd", "--check"])
    assert r.returncode == 2 and "expected fedavg, fedprox" in r.stderr, r.stderr
    r = run([coord, "--codec", "gzip", "--check"])
    assert r.returncode == 2 and "expected dense-f32" in r.stderr, r.stderr

    with tempfile.TemporaryDirectory() as d:
        bad = os.path.join(d, "bad.conf")
        cases = [
            (agent, "id = a\nthreshold = 1.5\n", "bad.conf:2: threshold"),
            (agent, "id = a\nbufer = 10\n", "bad.conf:2: bufer: unknown setting"),
            (agent, "id = a\njust words\n", "bad.conf:2: expected 'key = value'"),
            (coord, "hidden = 32,abc\n", "bad.conf:1: hidden: expected up to 4"),
            (coord, "model = transformer\n", "bad.conf:1: model: expected mlp, logreg or giot"),
        ]
        for prog, text, want in cases:
            with open(bad, "w") as f:
                f.write(text)
            r = run([prog, "--config", bad, "--check"])
            assert r.returncode == 2 and want in r.stderr, (text, r.returncode, r.stderr)
        r = run([agent, "--id", "a/b", "--check"])
        assert r.returncode == 2 and "[A-Za-z0-9._-]" in r.stderr, r.stderr
        r = run([agent, "--id", "a", "--epochs"])
        assert r.returncode == 2 and "--epochs needs a value" in r.stderr, r.stderr
    print("config_examples: passed")


if __name__ == "__main__":
    main()
