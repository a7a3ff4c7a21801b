"""The comparison's pure parts: the generator-bound flag, the progress bar, the spread rule, the ladders."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from comparison.matrix import LADDER_KINDS, ladders
from comparison.progress import Progress
from comparison.records import (
    GATEWAY_SATURATED_PCT,
    GENERATOR_CPU_PCT,
    PROXY_SATURATED_PCT,
    generator_bound,
    ladder_ends,
    summarise,
)
from comparison.report.results import CellView, Results
from comparison.report.verdict import beyond_spread, build


def record(p99: float, lag: float | None, cpu: float | None) -> dict[str, Any]:
    return {"status": "ok", "requests": {"deliver": {"p99_ms": p99}},
            "derived": {"generator_lag_p99_ms": lag}, "sampling": {"generator_cpu_pct_max": cpu}}


def test_a_cell_is_generator_bound_by_its_lag_share_or_its_cpu() -> None:
    assert not generator_bound(record(p99=100, lag=20, cpu=50))  # exactly 20 %: not over
    assert generator_bound(record(p99=100, lag=21, cpu=50))
    assert generator_bound(record(p99=100, lag=1, cpu=GENERATOR_CPU_PCT + 1))
    assert not generator_bound(record(p99=100, lag=None, cpu=None))  # nothing measured: nothing claimed


def cell(values: list[float], bound: int = 0) -> CellView:
    repeats = [{**record(v, 0, 0), "flags": {"generator_bound": i < bound}} for i, v in enumerate(values)]
    return CellView("c-u10", "cells/c-u10.json", "ok", {"key": "c"}, {"users": 10},
                    {"load": {"users": 10}, "summary": summarise(repeats)})


def test_a_difference_counts_only_beyond_the_spread_of_two_or_more_repeats() -> None:
    assert beyond_spread(cell([10, 11, 12]), cell([20, 21, 25]), "deliver_p99_ms")
    assert not beyond_spread(cell([10, 11, 22]), cell([20, 21, 25]), "deliver_p99_ms")  # ranges overlap
    assert not beyond_spread(cell([10]), cell([50]), "deliver_p99_ms")  # one repeat: no spread known


def test_generator_bound_cells_stay_out_of_the_verdict() -> None:
    assert cell([10, 11, 12], bound=1).comparable
    assert not cell([10, 11, 12], bound=2).comparable and cell([10, 11, 12], bound=2).usable


def test_progress_only_moves_forward_and_reaches_100_at_the_end() -> None:
    progress = Progress([10.0, 10.0, 10.0], stream=io.StringIO())
    shown = []
    for i in range(3):
        progress.begin(f"step {i}")
        shown.append(progress.line())
        progress.started -= 30  # this step took far longer than planned: the estimate grows
        progress.end()
        shown.append(progress.line())
    fractions = [int(line.split("]")[1].split("%")[0]) for line in shown]
    assert fractions == sorted(fractions), shown
    assert fractions[-1] == 100 and max(fractions[:-1]) < 100
    assert "3/3 done" in shown[-1]


def test_a_ladder_ends_at_the_first_step_past_the_bound_or_with_a_loss() -> None:
    def step(p99: float, lag: float = 1.0, cpu: float = 20.0, proxy: float | None = None,
             gateway: float = 50.0, **totals: int) -> dict[str, Any]:
        repeat = {"status": "ok", "derived": {"generator_lag_p99_ms": lag}, "sampling": {"generator_cpu_pct_max": cpu}}
        summary = {"deliver_p99_ms": {"median": p99}, "totals": totals, "gateway_cpu_pct_mean": {"median": gateway},
                   "proxy_cpu_pct_mean": None if proxy is None else {"median": proxy}}
        return {"status": "ok", "summary": summary, "repeats": [repeat]}

    assert ladder_ends(step(200), 250) is None
    assert ladder_ends(step(300), 250) == "p99 delivery passed the bound"
    assert ladder_ends(step(10, lost=1), 250) == "deliveries were lost"
    # The generator's lag is weighed against the bound: a quarter of an 8 ms p99 is not "behind"
    # (generator-bound for the verdict, which compares p99s), a fifth of the bound is.
    assert ladder_ends(step(8, lag=2, repeats_generator_bound=1), 250) is None
    assert ladder_ends(step(90, lag=51), 250) == "the load generator could not keep up"
    assert ladder_ends(step(90, cpu=GENERATOR_CPU_PCT + 1), 250) == "the load generator could not keep up"
    assert ladder_ends({"status": "failed", "summary": None}, 250) == "it has no numbers (failed)"
    # A proxy on a full core: the knee is the proxy's, whatever the p99 says.
    assert ladder_ends(step(20, proxy=PROXY_SATURATED_PCT + 1), 250) == "the proxy saturated"
    assert ladder_ends(step(400, proxy=PROXY_SATURATED_PCT + 1), 250) == "the proxy saturated"
    assert ladder_ends(step(20, proxy=PROXY_SATURATED_PCT - 1), 250) is None
    # The gateway on a full core past the bound: its own knee, even with the generator lagging too.
    saturated = "the gateway saturated its core and p99 delivery passed the bound"
    assert ladder_ends(step(2300, lag=81, gateway=GATEWAY_SATURATED_PCT + 7), 250) == saturated
    assert ladder_ends(step(200, gateway=GATEWAY_SATURATED_PCT + 7), 250) is None  # within the bound: no end


def test_ladders_step_up_per_transport_and_profile() -> None:
    cells = ladders(kinds=("sse-block",), users=(50, 100), one_room_rates=(1.0, 2.0), one_room_users=1000)
    assert [c.load.users for c in cells] == [50, 100, 1000, 1000]
    assert [c.load.room_size for c in cells] == [10, 10, 1000, 1000]
    assert cells[3].load.publish_rate * cells[3].load.users == 2.0  # publishes/s across the one room
    assert len({c.id for c in cells}) == 4 and {c.rung.series for c in cells if c.rung} == {
        "sse-block rooms of 10", "sse-block one room of 1000"}


# -- the verdict's words: no direction unless beyond the spread, none in a smoke test -----------

DIRECTION = re.compile(r"×|\bwins?\b|\blower\b|\bhigher\b|% of its")


def gateway_cell(key: str, p99s: list[float], cpus: list[float] | None = None, users: int = 10,
                 bound: int = 0) -> CellView:
    """A gateway cell of the matrix (``key`` from comparison.matrix) whose repeats measured ``p99s``."""
    kind = {"key": key, "family": key.split("-block")[0].split("-direct")[0], "profile": "block-websocket",
            "server": "gateway", "fault": False, "title": key}
    repeats = []
    for i, p99 in enumerate(p99s):
        cpu = (cpus or [0.3] * len(p99s))[i]
        repeats.append({
            "repeat": i + 1, "status": "ok",
            "requests": {"deliver": {"p99_ms": p99, "p50_ms": p99 / 4, "count": 1000}},
            "derived": {"gateway_cpu_s_per_1000_deliveries": cpu, "generator_lag_p99_ms": 0.5},
            "sampling": {"generator_cpu_pct_max": 10.0, "cpu_pct": {"gateway": {"mean": 20.0}},
                         "other_cores_mean": 0.05},
            "flags": {"generator_bound": i < bound}})
    cell_id = f"{key}-u{users}"
    data = {"cell": cell_id, "kind": kind, "load": {"users": users}, "status": "ok", "repeats": repeats,
            "summary": summarise(repeats), "uses_proxy": True}
    return CellView(cell_id, f"cells/{cell_id}.json", "ok", kind, {"users": users}, data)


def verdict_texts(preset: str, *cells: CellView) -> dict[str, str]:
    manifest = {"plan": {"preset": preset}, "thresholds": {"generator_lag_share": 0.2}}
    results = Results(Path("/nonexistent"), manifest, None, list(cells))
    return {s.id: s.text for s in build(results)}


def test_a_smoke_test_states_no_direction_and_no_ratio() -> None:
    texts = verdict_texts("quick", gateway_cell("sse-block", [10]), gateway_cell("sio-polling-block", [300], [0.9]))
    assert "smoke-test" in texts and "blocked-latency-u10" in texts
    for sentence_id, text in texts.items():
        assert not DIRECTION.search(text), (sentence_id, text)
    assert "no direction claimed" in texts["blocked-latency-u10"]


def test_a_full_run_states_a_direction_only_beyond_the_spread() -> None:
    apart = verdict_texts("full", gateway_cell("sse-block", [10, 11, 12]),
                          gateway_cell("sio-polling-block", [300, 310, 320], [0.9, 0.9, 0.9]))
    assert "× lower, beyond what their repeats vary by" in apart["blocked-latency-u10"]
    assert "% of its gateway CPU" in apart["blocked-latency-u10"]
    overlapping = verdict_texts("full", gateway_cell("sse-block", [10, 19, 12]),
                                gateway_cell("sio-polling-block", [18, 25, 28], [0.3, 0.31, 0.29]))
    text = overlapping["blocked-latency-u10"]
    assert "within what their repeats vary by: no direction claimed" in text and "×" not in text, text
    assert "% of its" not in text


def test_a_wide_spread_is_explained_repeat_by_repeat_and_named_where_it_is_used() -> None:
    texts = verdict_texts("full", gateway_cell("sse-block", [10, 11, 40]),
                          gateway_cell("sio-polling-block", [300, 310, 320]))
    note = texts["spread-sse-block-u10"]
    assert "repeat 1 10 ms" in note and "repeat 3 40 ms" in note and "generator lag p99" in note, note
    assert "rests on cells whose repeats spread widely: sse-block-u10's p99 ranged 10 to 40 ms" in \
        texts["blocked-latency-u10"]


def test_medians_are_over_every_repeat_generator_bound_or_not() -> None:
    # Leaving bound repeats out would select against the fast ones (their small p99 is the easiest
    # for the lag to pass); the cell is judged as a whole instead.
    summary = (gateway_cell("sse-block", [5, 30, 32], bound=1).data or {})["summary"]
    assert summary["deliver_p99_ms"] == {"median": 30.0, "min": 5.0, "max": 32.0, "n": 3}
    assert summary["totals"]["repeats_generator_bound"] == 1 and summary["totals"]["deliveries"] == 3000


def test_ladder_steps_join_first_then_measure_steady_state() -> None:
    cells = ladders(kinds=("sse-direct", "sio-polling-nginx"), users=(400,), one_room_rates=(1.0,),
                    one_room_users=1000, join_margin=3.0)
    for c in cells:
        # The users spawn and join (not measured), then the window of the step's duration opens.
        assert c.timing.settle == c.load.users / c.load.spawn_rate + 3.0 and c.timing.duration > 0
        assert c.seconds == c.timing.settle + c.timing.duration
    # With WebSocket allowed nothing is blocked: no proxy in the path; behind block-websocket, the real nginx.
    assert [(c.kind.key, c.uses_proxy) for c in cells] == [("sse-direct", False), ("sse-direct", False),
                                                          ("sio-polling-nginx", True), ("sio-polling-nginx", True)]
    assert {"sse-nginx", "sio-polling-nginx", "sse-direct", "sio-websocket-direct", "sio-polling-direct"} == set(
        LADDER_KINDS)
