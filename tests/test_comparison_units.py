"""The comparison's pure parts: the generator-bound flag, the progress bar, the spread rule, the ladders."""

from __future__ import annotations

import io
from typing import Any

from comparison.matrix import LADDER_KINDS, ladders
from comparison.progress import Progress
from comparison.records import GENERATOR_CPU_PCT, PROXY_SATURATED_PCT, generator_bound, ladder_ends, summarise
from comparison.report.results import CellView
from comparison.report.verdict import beyond_spread


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
             **totals: int) -> dict[str, Any]:
        repeat = {"status": "ok", "derived": {"generator_lag_p99_ms": lag}, "sampling": {"generator_cpu_pct_max": cpu}}
        summary = {"deliver_p99_ms": {"median": p99}, "totals": totals,
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


def test_ladders_step_up_per_transport_and_profile() -> None:
    cells = ladders(kinds=("sse-block",), users=(50, 100), one_room_rates=(1.0, 2.0), one_room_users=1000)
    assert [c.load.users for c in cells] == [50, 100, 1000, 1000]
    assert [c.load.room_size for c in cells] == [10, 10, 1000, 1000]
    assert cells[3].load.publish_rate * cells[3].load.users == 2.0  # publishes/s across the one room
    assert len({c.id for c in cells}) == 4 and {c.rung.series for c in cells if c.rung} == {
        "sse-block rooms of 10", "sse-block one room of 1000"}


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
