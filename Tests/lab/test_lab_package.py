"""Packages (issue 16): the lab's agent is the one its Debian packages install.

scripts/lab.sh builds aos-common and aos-agent with scripts/build-packages.sh and puts them in
the run's share; each guest's /init installs them with `dpkg -i` at every boot (the guest root
is RAM: every boot is a clean host) and lab-agent starts /usr/bin/aos-agent, as the unit does.
Asserted on both guests: dpkg has both packages installed, at the version the installed
`aos-agent --version` prints (the one version, ProductVersion.current), their files
are as packaged (`dpkg -V`), the files are where docs/packaging.md says, the running agent is
/usr/bin/aos-agent, and the installed binary answers `check --help`. Prints how long the
install took at boot. Reads only.
"""

from __future__ import annotations

import re

import pytest

from conftest import report
from labvm import Guest

pytestmark = pytest.mark.timeout(300)


def test_agent_installed_from_package(g1: Guest, g2: Guest) -> None:
    lines = []
    for g in (g1, g2):
        version = g.run_cmd(["/usr/bin/aos-agent", "--version"], check=True).stdout.strip()
        assert re.fullmatch(r"aos-agent [0-9][0-9A-Za-z.+~-]*", version), version
        want = version.split()[1]
        status = g.run_cmd(["dpkg-query", "-W", "-f=${Package} ${Status} ${Version}\\n", "aos-common", "aos-agent"])
        assert status.exit == 0, status
        assert sorted(status.stdout.splitlines()) == [
            f"aos-agent install ok installed {want}",
            f"aos-common install ok installed {want}",
        ], status
        # Every installed file matches the package's md5sums (nothing replaced behind dpkg's back);
        # the image's dpkg leaves /usr/share/doc and /usr/share/man out (build-image.sh: path-exclude).
        verify = g.run_cmd(["dpkg", "-V", "aos-common", "aos-agent"])
        assert verify.exit == 0, verify
        excluded = ("/usr/share/doc/", "/usr/share/man/")
        bad = [line for line in verify.stdout.splitlines()
               if not (line.split()[-1] + "/").startswith(excluded)]
        assert not bad, verify
        files = g.run_cmd(["dpkg", "-L", "aos-agent", "aos-common"], check=True).stdout.splitlines()
        for path in ("/usr/bin/aos-agent", "/lib/systemd/system/aos-agent.service",
                     "/lib/systemd/system/nova-compute.service.d/aos-agent.conf",
                     "/lib/systemd/system/cinder-volume.service.d/aos-agent.conf", "/etc/aos/aos.conf"):
            assert path in files, (g.name, path, files)
        conf = g.run_cmd(["stat", "-c", "%a %U:%G", "/etc/aos/aos.conf"], check=True)
        assert conf.stdout.strip() == "640 root:root", conf
        # The agent lab-agent started (and /init's autostart after a reboot) is the installed one.
        if g.sh("lab-agent status").exit != 0:  # an earlier test may have left it stopped
            g.agent_start()
        exe = g.sh("readlink /proc/$(cat /run/aos-agent.pid)/exe", check=True)
        assert exe.stdout.strip() == "/usr/bin/aos-agent", exe
        helped = g.run_cmd(["/usr/bin/aos-agent", "check", "--help"])
        assert helped.exit == 0 and "USAGE: aos-agent check" in helped.stdout, helped
        boot = re.findall(r"lab-init: installed (.*) \(([0-9.]+) -> ([0-9.]+) s\)", g.console_tail(100000))
        assert boot, f"{g.name}: no 'installed' line from /init on the console"
        debs, t0, t1 = boot[-1]
        lines.append(f"  {g.name}: dpkg -i {debs} at boot: {float(t1) - float(t0):.1f} s (TCG)")
    report("agent packages installed in the guests:\n" + "\n".join(lines))
