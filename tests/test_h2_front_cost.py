"""The HTTP/2 front's cost, end to end and tiny: ``python -m comparison.proxy_overhead --parts h2``
starts the gateway and nginx with deploy/nginx/http2-tls.conf (a self-signed certificate),
measures GETs, acked publishes and SSE deliveries over one HTTP/2 connection beside uvicorn over
HTTP/1.1, and prints figures for both. The figures of a smoke run mean nothing; what it proves
is that every step still runs and every delivery arrives (the run fails otherwise).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from comparison.proxy_overhead import h2_available

from .servers import timeout

pytestmark = [pytest.mark.serial,  # starts nginx and prints CPU figures: runs alone
              pytest.mark.skipif(h2_available() is not None, reason=str(h2_available()))]

ROOT = Path(__file__).resolve().parents[1]
FIGURES = re.compile(r"^\s+(direct|nginx-h2-tls)\s+median\s+(\d+) us\s+p99\s+(\d+) us.*CPU/1000 (\w+): .*gateway ([\d.]+) s$")


def test_h2_front_cost_runs_end_to_end() -> None:
    streams, events = 6, 10
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run(
        [sys.executable, "-m", "comparison.proxy_overhead", "--parts", "h2", "--requests", "20", "--messages", "20",
         "--h2-streams", str(streams), "--h2-events", str(events)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout(90),
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "skipped" not in run.stdout, run.stdout
    figures = [m.groups() for line in run.stdout.splitlines() if (m := FIGURES.match(line))]
    # Three workloads, each direct (uvicorn, HTTP/1.1) and through the HTTP/2 front.
    assert [(name, units) for name, _, _, units, _ in figures] == [
        ("direct", "requests"), ("nginx-h2-tls", "requests"), ("direct", "publishes"), ("nginx-h2-tls", "publishes"),
        ("direct", "deliveries"), ("nginx-h2-tls", "deliveries"),
    ], run.stdout
    assert all(int(median) > 0 and int(p99) >= int(median) for _, median, p99, _, _ in figures), run.stdout
    # Every delivery arrived once, on both paths (the run checks each event's count per stream).
    assert f"{streams} streams (h2: all on one connection) x {events} events ({streams * events} deliveries, every one arrived once)" in run.stdout
    assert re.search(r"nginx-h2-tls .*CPU/1000 deliveries: proxy [\d.]+ s, gateway", run.stdout), run.stdout
