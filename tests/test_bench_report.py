"""The benchmark's report and its driver's loop, on fixed documents: medians and ranges over
repetitions, the per-window table, the side-by-side table (pure, nothing timed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from comparison.bench import report, runner
from comparison.bench.report import Stat, groups, stat

N = 1000
RATES = [5_000.0, 20_000.0]


def open_phase(target: float, p50: float, p99: float, *, saturated: bool = False, cpu: float = 15.0) -> dict[str, Any]:
    return {"kind": "open", "rate": target / N, "latency_ms": {"p50": p50, "p99": p99}, "saturated": saturated,
            "server_cpu_ms_per_1k": cpu, "generator_cpu_util": 0.5, "other_cpu_util": 0.0}


def closed_phase(window: int, deliveries: float, p50: float, p99: float) -> dict[str, Any]:
    return {"kind": "closed", "window": window, "max_deliveries_per_s": deliveries,
            "deliveries_per_server_cpu_s": deliveries * 1.01, "latency_ms": {"p50": p50, "p99": p99},
            "drained": True, "server_cpu_ms_per_1k": 14.0, "generator_cpu_util": 0.7, "other_cpu_util": 0.0}


def a_run(server: str, repetition: int, phases: list[dict[str, Any]], rss_kb: float = 14.0) -> dict[str, Any]:
    return {"status": "ok", "spec": {"n": N}, "server": {"name": server, "nodes": [{}]}, "repetition": repetition,
            "phases": phases, "idle": {"rss_per_connection_bytes": rss_kb * 1024},
            "loss": {"lost": 0, "duplicates": 0, "disconnected": 0, "failed_publishes": 0},
            "connect": {"failed": 0}}


def a_doc(runs: list[dict[str, Any]], windows: list[int], repeat: int, baseline: str = "node-socketio-ws") -> dict[str, Any]:
    return {"started": "2026-12-08T00:00:00+00:00", "command": "python -m comparison.bench",
            "machine": {"cpu_model": "a CPU", "cpus": 2, "memory_bytes": 2**30, "os": "Linux", "python": "3.11",
                        "python_packages": {}, "node_packages": {}},
            "config": {"deliveries_per_s": RATES, "windows": windows, "repeat": repeat, "baseline": baseline,
                       "server_cpu": 0, "generator_cpu": 1, "drain_timeout": 10.0, "saturated_p99_ms": 1000.0},
            "runs": runs}


def sse(repetition: int, p50: float, p99: float, w1: float, w16: float) -> dict[str, Any]:
    return a_run("gateway-sse", repetition, [
        open_phase(5_000, p50 + 1, p99 + 1), open_phase(20_000, p50, p99),
        closed_phase(1, w1, 1.0, 2.0), closed_phase(16, w16, 30.0, 50.0)])


def node(repetition: int, p50: float, p99: float, w1: float, w16: float) -> dict[str, Any]:
    return a_run("node-socketio-ws", repetition, [
        open_phase(5_000, p50, p99, cpu=12.0), open_phase(20_000, p50, p99, cpu=12.0),
        closed_phase(1, w1, 0.5, 1.0), closed_phase(16, w16, 80.0, 160.0)], rss_kb=28.0)


@pytest.fixture
def three_runs() -> dict[str, Any]:
    """gateway-sse and node, three repetitions each, interleaved as the driver runs them."""
    runs = [sse(0, 9.4, 19.2, 20_000, 280_000), node(0, 7.7, 18.5, 30_000, 117_000),
            sse(1, 9.7, 18.4, 21_000, 260_000), node(1, 7.2, 24.8, 31_000, 130_000),
            sse(2, 10.8, 20.1, 19_000, 290_000), node(2, 7.3, 17.8, 29_000, 120_000)]
    return a_doc(runs, [1, 16], repeat=3)


def test_stat_is_median_and_range_of_what_was_measured() -> None:
    assert stat([3.0, None, 1.0, 2.0]) == Stat(2.0, 1.0, 3.0, 3)
    assert stat([4.0, 1.0]) == Stat(2.5, 1.0, 4.0, 2)
    assert stat([None]) is None
    assert Stat(9.7, 9.4, 10.8, 3).format(".1f") == "9.7 (9.4–10.8)"
    assert Stat(9.71, 9.69, 9.74, 3).format(".1f") == "9.7"  # equal at the precision shown: no range


def test_groups_gather_the_interleaved_repetitions(three_runs: dict[str, Any]) -> None:
    found = groups(three_runs)
    assert [(g.n, g.server, [r["repetition"] for r in g.runs]) for g in found] == [
        (N, "gateway-sse", [0, 1, 2]), (N, "node-socketio-ws", [0, 1, 2])]


def test_results_table_gives_medians_and_ranges(three_runs: dict[str, Any]) -> None:
    rows = report.results_table(three_runs).splitlines()
    assert rows[0] == ("| N | server | runs | p50 / p99 ms @ 5k/s | p50 / p99 ms @ 20k/s | CPU ms / 1k deliveries "
                       "| gen CPU ms / 1k | gen read lag p99 ms | RSS / idle conn | lost | dup | gen CPU max | notes |")
    assert rows[2] == ("| 1000 | gateway-sse | 3 | 10.7 / 20.2 (10.4–11.8 / 19.4–21.1) "
                       "| 9.7 / 19.2 (9.4–10.8 / 18.4–20.1) | 15.0 @ 20k/s | – | – | 14.0 KB | 0 | 0 | 70% |  |")
    assert "| 7.3 / 18.5 (7.2–7.7 / 17.8–24.8) |" in rows[3]


def test_generator_cost_is_read_in_the_phase_of_the_server_s_figure() -> None:
    def run(repetition: int, gen_cpu: float, lag_p99: float, *, saturated: bool = False) -> dict[str, Any]:
        phases = [open_phase(5_000, 5.0, 9.0), open_phase(20_000, 9.0, 19.0, saturated=saturated)]
        for phase, cost in zip(phases, (gen_cpu, gen_cpu / 2), strict=True):  # 20k/s's differs: shows which phase is read
            phase.update(generator_cpu_ms_per_1k=cost, read_lag_ms={"p50": 0.01, "p99": lag_p99})
        return a_run("raw-sse", repetition, phases) | {"sink": {"kind": "c", "latency_connections": 125,
                                                                 "connections": 1000}}

    doc = a_doc([run(0, 6.0, 0.08), run(1, 7.0, 0.10), run(2, 9.0, 0.30)], [16], repeat=3)
    cells = report.results_table(doc).splitlines()[2].split(" | ")
    assert cells[6:8] == ["3.5 (3.0–4.5) @ 20k/s", "0.10 (0.08–0.30)"]
    assert cells[-1] == "latency from 125 of 1000 subscribers |"
    # 20k/s saturated in one run: that run's figures come from 5k/s, as the server's CPU does
    doc = a_doc([run(0, 6.0, 0.08), run(1, 7.0, 0.10, saturated=True)], [16], repeat=2)
    cells = report.results_table(doc).splitlines()[2].split(" | ")
    assert cells[5:8] == ["15.0 @ 20k/s, 5k/s", "5.0 (3.0–7.0) @ 20k/s, 5k/s", "0.09 (0.08–0.10)"]
    python_sink = run(0, 6.0, 0.08) | {"sink": {"kind": "python (--sink python)"}}  # reads every subscriber
    python_sink["phases"][1].pop("read_lag_ms")
    row = report.results_table(a_doc([python_sink], [16], repeat=1)).splitlines()[2]
    assert "| 3.0 @ 20k/s | – |" in row and row.endswith("| generator sink: python (--sink python) |")


def test_saturation_counts_the_runs_it_hit() -> None:
    runs = [a_run("gateway-sse", 0, [open_phase(5_000, 10.0, 20.0), open_phase(20_000, 900.0, 2000.0, saturated=True)]),
            a_run("gateway-sse", 1, [open_phase(5_000, 11.0, 20.0), open_phase(20_000, 12.0, 30.0)]),
            a_run("gateway-sse", 2, [open_phase(5_000, 12.0, 20.0, saturated=True),
                                     {"kind": "open", "rate": 20.0, "skipped": "a lower rate saturated"}])]
    group = groups(a_doc(runs, [16], repeat=3))[0]
    assert report.latency_cell(5_000, group) == "**sat. 1/3** 11.0 / 20.0 (10.0–12.0 / 20.0–20.0)"
    assert report.latency_cell(20_000, group) == "**sat. 2/3** 456.0 / 1015.0 (12.0–900.0 / 30.0–2000.0)"
    skipped = groups(a_doc(runs[2:], [16], repeat=1))[0]
    assert report.latency_cell(20_000, skipped) == "sat."
    assert report.latency_cell(5_000, skipped) == "**sat.** 12.0 / 20.0"


def test_window_table_has_each_window_side_by_side(three_runs: dict[str, Any]) -> None:
    rows = report.window_table(three_runs).splitlines()
    assert rows[0] == ("| N | server | window 1: deliveries/s | window 1: per server CPU-s | window 1: p50 / p99 ms "
                       "| window 16: deliveries/s | window 16: per server CPU-s | window 16: p50 / p99 ms |")
    assert rows[2] == ("| 1000 | gateway-sse | 20,000 (19,000–21,000) | 20,200 (19,190–21,210) | 1.0 / 2.0 "
                       "| 280,000 (260,000–290,000) | 282,800 (262,600–292,900) | 30.0 / 50.0 |")


def test_a_document_from_before_the_window_sweep_has_its_one_window() -> None:
    doc = a_doc([sse(0, 9.0, 19.0, 20_000, 280_000)], [16], repeat=1)
    del doc["config"]["windows"], doc["config"]["repeat"], doc["runs"][0]["repetition"]
    doc["config"]["window"] = 16
    rows = report.window_table(doc).splitlines()
    assert rows[0] == ("| N | server | window 16: deliveries/s | window 16: per server CPU-s "
                       "| window 16: p50 / p99 ms |")
    assert rows[2] == "| 1000 | gateway-sse | 280,000 | 282,800 | 30.0 / 50.0 |"
    assert "| runs |" not in report.results_table(doc)


def test_baseline_table_divides_medians_by_the_baseline_s(three_runs: dict[str, Any]) -> None:
    rows = report.baseline_table(three_runs, "node-socketio-ws").splitlines()
    assert rows[0] == ("| N | server vs node-socketio-ws | p50 / p99 ms @ 5k/s | p50 / p99 ms @ 20k/s "
                       "| window 1: deliveries/s | window 16: deliveries/s | CPU ms / 1k |")
    assert rows[2] == ("| 1000 | gateway-sse | 10.7 / 20.2 vs 7.3 / 18.5 = 1.47× / 1.09× "
                       "| 9.7 / 19.2 vs 7.3 / 18.5 = 1.33× / 1.04× | 20,000 vs 30,000 = 0.67× "
                       "| 280,000 vs 120,000 = 2.33× | 15.0 vs 12.0 = 1.25× |")
    assert len(rows) == 3  # the baseline is not compared with itself


def test_any_server_can_be_the_baseline(three_runs: dict[str, Any]) -> None:
    rows = report.baseline_table(three_runs, "gateway-sse").splitlines()
    assert rows[2].startswith("| 1000 | node-socketio-ws | 7.3 / 18.5 vs 10.7 / 20.2 = 0.68× / 0.92× |")
    assert report.baseline_table(three_runs, "python-socketio-ws") == ""  # not run: no table
    assert "Side by side with node-socketio-ws" in report.markdown(three_runs)


def test_targets_use_the_medians_at_the_largest_window(three_runs: dict[str, Any]) -> None:
    rows = {row["target"]: row for row in report.targets(three_runs)}
    throughput = rows[f"SSE max deliveries/s at N={N} vs Node socket.io (window 16)"]
    assert throughput["ratio"] == pytest.approx(280_000 / 120_000) and throughput["met"]
    p99 = rows[f"SSE p99 at 20 msg/s to {N} vs Node socket.io"]
    assert p99["ratio"] == pytest.approx(19.2 / 18.5) and p99["met"] is False
    assert rows[f"RSS per idle SSE connection (N={N})"]["measured"] == "14.0 KB"


def test_the_driver_interleaves_repetitions_and_keeps_every_run(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    written: list[int] = []
    out = tmp_path / "bench.json"

    def run_one(config: runner.Config, name: str, n: int, repetition: int = 0) -> dict[str, Any]:
        if out.exists():
            written.append(len(json.loads(out.read_text())["runs"]))
        calls.append((name, n, repetition))
        noisy = 0.5 if (name, repetition, len(calls)) == ("b", 1, 4) else 0.0  # b's second run: once more
        return {"status": "ok", "spec": {"n": n}, "server": {"name": name},
                "phases": [{"kind": "closed", "window": 16, "other_cpu_util": noisy}]}

    monkeypatch.setattr(runner, "run_one", run_one)
    config = runner.Config(servers=["a", "b"], ns=[10, 20], repeat=2, retry_noisy=1, quiet_wait=0)
    doc = runner.run(config, [], out)
    assert calls == [("a", 10, 0), ("b", 10, 0), ("a", 10, 1), ("b", 10, 1), ("b", 10, 1),
                     ("a", 20, 0), ("b", 20, 0), ("a", 20, 1), ("b", 20, 1)]
    assert [(r["server"]["name"], r["spec"]["n"], r["repetition"]) for r in doc["runs"]] == [
        (name, n, rep) for name, n, rep in calls[:4] + calls[5:]]
    assert doc["runs"][3]["noise_by_attempt"] == [0.5, 0.0]
    assert written == [1, 2, 3, 3, 4, 5, 6, 7]  # the document is rewritten after every run
    assert json.loads(out.read_text())["config"]["repeat"] == 2
