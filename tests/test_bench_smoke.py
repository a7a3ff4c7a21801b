"""The benchmark, end to end and tiny: every server it starts delivers every payload, once.

The figures of a smoke run mean nothing (20 subscribers, a second a phase, on a CI
machine); what it proves is that ``python -m comparison.bench`` still starts each server,
drives it through every phase with its own generator, and writes a complete result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from comparison.bench.servers import node_available

from .servers import timeout

pytestmark = pytest.mark.serial  # a load generator or throughput figures: runs alone

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_delivers_everything(tmp_path: Path) -> None:
    servers = ["gateway-sse", "gateway-sio-ws", "python-socketio-ws"]
    if node_available():
        servers.append("node-socketio-ws")
    cpus = sorted(os.sched_getaffinity(0))
    out = tmp_path / "bench.json"
    argv = [
        sys.executable, "-m", "comparison.bench", "--quick", "--n", "20",
        "--phase-seconds", "1", "--saturation-seconds", "1", "--deliveries", "1000,4000",
        "--servers", ",".join(servers), "--server-cpu", str(cpus[0]), "--generator-cpu", str(cpus[-1]),
        "--out", str(out),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout(58))
    assert done.returncode == 0, done.stderr[-4000:]

    doc = json.loads(out.read_text())
    assert doc["machine"]["cpus"] and doc["command"].startswith("python -m comparison.bench --quick")
    runs = {run["server"]["name"]: run for run in doc["runs"]}
    assert sorted(runs) == sorted(servers)
    for name, run in runs.items():
        assert run["status"] == "ok", (name, run.get("error"), run.get("server_stderr"))
        # Every server here is read by the C sink (sse, sio-ws), which needs a C compiler.
        c_sink = shutil.which(os.environ.get("CC", "cc")) is not None
        assert run["sink"]["kind"] == ("c" if c_sink else run["sink"]["kind"]), (name, run["sink"])
        if c_sink:
            assert run["sink"]["dropped"] == 0 and run["sink"]["loop_error"] == 0, (name, run["sink"])
        assert run["connect"]["subscribers"] == 20, name
        loss = run["loss"]
        assert loss["deliveries"] > 0, name
        assert (loss["lost"], loss["duplicates"], loss["disconnected"]) == (0, 0, 0), (name, loss)
        kinds = [phase["kind"] for phase in run["phases"]]
        assert kinds == ["open", "open", "closed"], (name, kinds)
        for phase in run["phases"]:
            assert phase["deliveries"] > 0 and phase["latency_ms"]["min"] > 0, (name, phase)
            assert phase["generator_cpu_ms_per_1k"] > 0, (name, phase)
            assert bool(phase["read_lag_ms"]) == c_sink, (name, phase)
        assert run["phases"][-1]["max_deliveries_per_s"] > 0, name
    assert "| gateway-sse |" in done.stdout
