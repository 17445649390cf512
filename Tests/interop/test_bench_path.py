"""`aos-bench path` runs end to end (issue 17, docs/performance.md "The whole path").

A smoke test with a few calls: the benchmark starts its own aos-controller, one simulated
aos-agent, the C floor (one hop, and two through the C relay) and the Cinder driver's client
(bench/path_driver.py under the cinder venv), and must print every path with its ratio to the
floor, and the paths through the controller also with their ratio to the two-hop floor. No
figure is asserted; the numbers of a run this short mean nothing.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.timeout(180)

PATHS = (
    "C floor, two hops (client → relay → server)",
    "Swift → controller → agent: get_volume",
    "Swift → controller → agent: activate_volume",
    "Swift → controller: list_agents",
    "Swift → agent: lv_info",
    "Swift → agent: activate_lv",
    "Python driver → controller → agent: get_volume",
    "Python driver → controller → agent: activate_volume",
    "Python driver → controller: list_agents",
)


def test_bench_path_prints_every_path_against_the_floor(swift_bin: Path, amqp_url: str) -> None:
    if not (REPO_ROOT / ".venv" / "cinder" / "bin" / "python").exists():
        pytest.skip("no .venv/cinder (scripts/setup.sh builds it): the driver's path cannot run")
    result = subprocess.run(
        [str(swift_bin / "aos-bench"), "path", "--url", amqp_url, "--auth", "off", "--rounds", "1",
         "--calls", "20", "--warmup", "5"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, f"aos-bench path failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    out = result.stdout
    summary = out.split("medians of the rounds' figures:", 1)
    assert len(summary) == 2, out
    for name in PATHS:
        line = next((ln for ln in summary[1].splitlines() if name in ln), None)
        assert line is not None, f"{name!r} missing from the summary:\n{out}"
        assert re.search(r"x floor: \d+\.\d\d", line), line
        if "controller → agent" in name:
            assert re.search(r"x two-hop floor: \d+\.\d\d", line), line
    assert re.search(r"controller hop, get_volume minus the direct call: -?\d+\.\d{3} ms", out), out
    assert re.search(r"the controller's own work in get_volume .*: -?\d+\.\d{3} ms", out), out
    assert "auth: enforce = false" in out
