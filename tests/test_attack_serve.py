"""scripts/attack_serve.py against a real `mnist-zoo serve` of a tiny run: every attack refused, the server up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT, copy_runs
from tests.skips import import_or_skip

import_or_skip("starlette")  # the server's framework (the serve extra)
SCRIPT = REPO_ROOT / "scripts" / "attack_serve.py"


@pytest.mark.slow  # starts a server process (TensorFlow) and holds slow connections for its 10 s header deadline
def test_the_hostile_client_finds_every_attack_refused_and_the_server_up(tiny_runs, tmp_path):
    run = copy_runs(tiny_runs, tmp_path / "runs", models=["linear"])["linear"]
    result = subprocess.run([sys.executable, str(SCRIPT), "--run", str(run), "--quick", "--json"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    failed = [f"{attack['name']}: {attack['outcome']}" for attack in report["attacks"] if attack["result"] == "FAIL"]
    assert not failed, "\n".join(failed)
    skipped = [attack["name"] for attack in report["attacks"] if attack["result"] == "SKIP"]
    assert skipped == ["100,000 bytes declared, 4 bytes a second"]  # the 60 s body deadline: --slow only
    assert report["passed"] is True and report["server_up"] is True
    assert 0 < report["peak_rss_mb"] <= report["max_rss_mb"]
    groups = {attack["group"].split(".")[0] for attack in report["attacks"]}
    assert {str(number) for number in range(1, 11)} <= groups, groups  # every attack of the issue ran
    assert len([attack for attack in report["attacks"] if attack["result"] == "PASS"]) >= 90
