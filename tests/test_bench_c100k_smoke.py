"""The 100k profile, tiny: ``--profile c100k`` at 1,000 connections over two source addresses.

Its figures mean nothing at this size; what it proves is that the profile still opens every
connection through 127.0.0.2 and .3, holds them through pings, delivers every room event
to all of them, and writes a complete result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .servers import timeout

pytestmark = pytest.mark.serial  # a load generator: runs alone

ROOT = Path(__file__).resolve().parents[1]
N = 1000


def test_c100k_profile_holds_and_delivers(tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    out = tmp_path / "c100k.json"
    argv = [
        sys.executable, "-m", "comparison", "bench", "--profile", "c100k", "--servers", "gateway-sse",
        "--connections", str(N), "--addresses", "2", "--ping-interval", "1", "--hold", "2.5", "--events", "2",
        "--phases", "idle,room", "--quiet-wait", "0", "--storm-budget", "20",
        "--server-cpu", str(cpus[0]), "--generator-cpu", str(cpus[-1]), "--out", str(out),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout(40))
    assert done.returncode == 0, done.stderr[-4000:]

    doc = json.loads(out.read_text())
    assert doc["needs"]["source_addresses"] == ["127.0.0.2", "127.0.0.3"]
    assert doc["needs"]["rlimit_nofile"][0] >= N
    (run,) = doc["runs"]
    assert run["status"] == "ok", (run.get("error"), run.get("server_stderr"))
    storm = run["storm"]
    assert (storm["connected"], storm["failed"], storm["stopped"]) == (N, 0, None), storm
    used = run["generator_needs"]["connections_per_source_address"]
    assert sorted(used) == ["127.0.0.2", "127.0.0.3"] and sum(used.values()) == N, used
    idle = run["idle"]
    assert (idle["held"], idle["late"], idle["without_a_read"]) == (N, 0, 0), idle
    room = run["room"]
    assert room["drained"] and room["events"] == 2 and room["deliveries"] == 2 * N, room
    assert (run["loss"]["lost"], run["loss"]["duplicates"], run["loss"]["disconnected"]) == (0, 0, 0), run["loss"]
    assert "| gateway-sse | 1,000 | 1,000 |" in done.stdout
