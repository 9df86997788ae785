"""Install test (issue 17): `cmake --install BUILD --prefix /usr` into a DESTDIR puts every file
where the FHS layout says (programs, plugin, man pages, example configs that never take an
operator's name, units, sysusers.d, tmpfiles.d) and nothing elsewhere; the installed programs
answer --version with the project version and --help with the installed example path; the units
pass `systemd-analyze verify` (with the installed binaries and man pages); the sysusers.d file
parses; `cpack -G DEB` builds a package whose contents and control fields are checked.
A check whose tool is missing (systemd-analyze, cpack, dpkg-deb) is skipped with a message;
deploy/install-deps.sh installs all of them."""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

EXPECTED = [
    "usr/bin/fedmq-agent", "usr/bin/fedmq-coordinator", "usr/bin/fedmq-replay",
    "usr/bin/fedmq-inspect", "usr/bin/fedmq-sim", "usr/bin/fedmq-zeek",
    "usr/share/man/man1/fedmq-agent.1", "usr/share/man/man1/fedmq-coordinator.1",
    "usr/share/man/man1/fedmq-zeek.1",
    "usr/share/man/man5/fedmq.conf.5",
    "etc/fedmq/agent.conf.example", "etc/fedmq/coordinator.conf.example",
    "etc/fedmq/coordinator-prod.conf.example", "etc/fedmq/zeek.conf.example",
    "etc/fedmq/broker/mosquitto-prod.conf.example", "etc/fedmq/broker/mosquitto-dev.conf.example",
    "etc/fedmq/broker/bridge-site.conf.example", "etc/fedmq/broker/fedmq.acl.example",
    "usr/lib/systemd/system/fedmq-agent@.service",
    "usr/lib/systemd/system/fedmq-coordinator.service",
    "usr/lib/systemd/system/fedmq-zeek@.service",
    "usr/lib/sysusers.d/fedmq.conf", "usr/lib/tmpfiles.d/fedmq.conf",
]
UNITS = ["fedmq-agent@.service", "fedmq-coordinator.service", "fedmq-zeek@.service"]


def skip(what):
    print("SKIP %s" % what)


def cache(build, key):
    with open(os.path.join(build, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split("=", 1)[1].strip()
    return ""


def run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)
    assert p.returncode == 0, "%s: exit %d\n%s%s" % (" ".join(argv), p.returncode, p.stdout,
                                                     p.stderr)
    return p.stdout


def check_tree(dest, version, prefix_is_usr):
    files = sorted(os.path.relpath(os.path.join(d, f), dest)
                   for d, _, fs in os.walk(dest) for f in fs)
    print("installed %d files:\n  %s" % (len(files), "\n  ".join(files)))
    missing = [f for f in EXPECTED if f not in files]
    assert not missing, "not installed: %s" % missing
    plugin = [f for f in files if re.fullmatch(r"usr/lib/(.+/)?fedmq/fedmq_plugin\.so", f)]
    assert plugin, "fedmq_plugin.so not in lib/<triplet>/fedmq or lib/fedmq"
    stray = [f for f in files if f.startswith(("usr/etc/", "usr/local/", "usr/var/"))]
    assert not stray, "outside the FHS layout: %s" % stray
    # an operator's own files are never installed over
    assert not [f for f in files if f.startswith("etc/") and not f.endswith(".example")], files
    for prog in ("fedmq-agent", "fedmq-coordinator", "fedmq-replay", "fedmq-inspect",
                 "fedmq-sim", "fedmq-zeek"):
        out = run([os.path.join(dest, "usr/bin", prog), "--version"])
        assert out.strip() == "%s %s" % (prog, version), out
    helps = run([os.path.join(dest, "usr/bin/fedmq-agent"), "--help"])
    if prefix_is_usr:
        assert "/etc/fedmq/agent.conf.example" in helps, helps
    for u in UNITS:
        text = open(os.path.join(dest, "usr/lib/systemd/system", u)).read()
        for d in ("ExecStart=/usr/bin/", "User=fedmq", "NoNewPrivileges=yes",
                  "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                  "StateDirectory=fedmq", "LogsDirectory=fedmq"):
            assert d in text, "%s lacks %s" % (u, d)
        # the daemons reload (SIGHUP reopens their log files); fedmq-zeek has nothing to reload
        assert ("ExecReload=" in text) == ("zeek" not in u), u
        assert "@" not in text.replace("fedmq-agent@", "").replace("fedmq-zeek@", "").replace(
            "@system-service", ""), \
            "%s has an unfilled @VAR@:\n%s" % (u, text)
    assert "/etc/fedmq/agent-%i.conf" in open(
        os.path.join(dest, "usr/lib/systemd/system/fedmq-agent@.service")).read()


def verify_units(dest, work):
    tool = shutil.which("systemd-analyze")
    if not tool:
        skip("systemd-analyze verify: systemd-analyze not found (apt-get install systemd)")
        return
    # The units name /usr/bin/...: verify copies whose programs point into DESTDIR (verify
    # checks that ExecStart is executable), the template under an instance name.
    vdir = os.path.join(work, "verify")
    os.makedirs(vdir)
    names = []
    for u in UNITS:
        text = open(os.path.join(dest, "usr/lib/systemd/system", u)).read()
        text = text.replace("/usr/bin/fedmq", os.path.join(dest, "usr/bin/fedmq"))
        name = u.replace("@.service", "@site-a.service")
        with open(os.path.join(vdir, name), "w") as f:
            f.write(text)
        names.append(os.path.join(vdir, name))
    env = dict(os.environ, MANPATH=os.path.join(dest, "usr/share/man"))
    argv = [tool, "verify"] + ([] if shutil.which("man") else ["--man=no"]) + names
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    out = (p.stdout + p.stderr).strip()
    print("systemd-analyze verify: exit %d%s" % (p.returncode, (":\n" + out) if out else ", clean"))
    # verify exits 0 on unknown keys and bad values too: any message is a failure
    assert p.returncode == 0 and not out, out
    sysusers = shutil.which("systemd-sysusers")
    if sysusers:
        p = subprocess.run([sysusers, "--dry-run", "--root=" + dest,
                            os.path.join(dest, "usr/lib/sysusers.d/fedmq.conf")],
                           capture_output=True, text=True, timeout=60)
        said = p.stdout + p.stderr
        assert p.returncode == 0 and "user 'fedmq'" in said, said
        print("systemd-sysusers --dry-run: %s" % said.strip().splitlines()[0])


def build_deb(build, work, version):
    cpack, dpkg_deb = shutil.which("cpack"), shutil.which("dpkg-deb")
    if not cpack or not dpkg_deb:
        skip("the Debian package: cpack or dpkg-deb not found (apt-get install cmake dpkg)")
        return
    out = os.path.join(work, "pkg")
    run([cpack, "-G", "DEB", "-B", out, "--config", os.path.join(build, "CPackConfig.cmake")],
        cwd=build)
    debs = glob.glob(os.path.join(out, "*.deb"))
    assert len(debs) == 1, debs
    listing = run([dpkg_deb, "-c", debs[0]])
    info = run([dpkg_deb, "-I", debs[0]])
    print("%s:\n%s\n%s" % (os.path.basename(debs[0]), info, listing))
    paths = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    for f in EXPECTED:
        assert "/" + f in paths, "/%s not in the package" % f
    fields = dict(re.findall(r"^ ([A-Za-z-]+): (.*)$", info, re.M))
    assert fields.get("Package") == "fedmq" and fields.get("Version") == version, fields
    assert "libpaho-mqtt" in fields.get("Depends", ""), "Depends: %s" % fields.get("Depends")
    assert all(s in info for s in ("conffiles", "postinst", "postrm")), info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    args = ap.parse_args()
    version = cache(args.build, "CMAKE_PROJECT_VERSION")
    prefix = cache(args.build, "CMAKE_INSTALL_PREFIX")
    work = tempfile.mkdtemp(prefix="fedmq-install-")
    ok = False
    try:
        dest = os.path.join(work, "root")
        run(["cmake", "--install", args.build, "--prefix", "/usr"],
            env=dict(os.environ, DESTDIR=dest))
        check_tree(dest, version, prefix == "/usr")
        verify_units(dest, work)
        build_deb(args.build, work, version)
        ok = True
    finally:
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept", work)
    print("install: passed")


if __name__ == "__main__":
    sys.exit(main())
