"""The report's tables as rows of display strings, shared by the HTML and Markdown renderings.

A measured value is shown as its median across repeats, with ``[min-max]`` when the repeats
differ. A cell without numbers shows its status instead of every value, never a zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ..records import GATEWAY_SATURATED_PCT, PROXY_SATURATED_PCT, ladder_ends
from .results import CellView, Results
from .sentences import fmt

DASH: Final = "–"


@dataclass(slots=True)
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""
    # Row indexes whose cell has no numbers (status shown in the first value column).
    muted: set[int] = field(default_factory=set)
    numeric: bool = True  # values right-aligned
    top: bool = False  # shown at the top of the report (after its section), not with the other numbers


def spread(cell: CellView, metric: str, digits_style: str = "num") -> str:
    med = cell.get(metric)
    if med is None:
        return DASH
    lo, hi = cell.get(metric, "min"), cell.get(metric, "max")
    text = fmt(med.value, digits_style)  # type: ignore[arg-type]
    if lo is not None and hi is not None:
        low, high = fmt(lo.value, digits_style), fmt(hi.value, digits_style)  # type: ignore[arg-type]
        if low != high:
            text += f" [{low}{DASH}{high}]"
    return text


def total(cell: CellView, metric: str) -> str:
    traced = cell.get(metric, "total")
    return DASH if traced is None else fmt(traced.value, "int")


def _status_row(cell: CellView, width: int) -> list[str]:
    why = f"{cell.status}" + (f": {cell.error}" if cell.error else "")
    return [why] + [""] * (width - 1)


FLAG: Final = " ⚠"


def flagged(cell: CellView) -> bool:
    """A repeat of this cell saturated the load generator, ran on a busy machine, or failed."""
    totals = ((cell.data or {}).get("summary") or {}).get("totals") or {}
    return bool(totals.get("repeats_saturated") or totals.get("repeats_busy_machine")) or cell.status == "partial"


def _rows(results: Results, table: Table, values: list[tuple[str, object]]) -> Table:
    if any(flagged(c) for c in results.cells):
        table.note += f" {FLAG.strip()}: a repeat of this cell is flagged (see Caveats and the Cells table)."
    for cell in results.cells:
        head = [cell.id + (FLAG if flagged(cell) else ""), str(cell.users or DASH)]
        if not cell.usable:
            table.muted.add(len(table.rows))
            table.rows.append(head + _status_row(cell, len(values)))
            continue
        row = list(head)
        for _, getter in values:
            row.append(getter(cell))  # type: ignore[operator]
        table.rows.append(row)
    return table


def cells_table(results: Results) -> Table:
    table = Table("Cells", ["cell", "transport", "proxy profile", "users", "status", "repeats ok", "notes"],
                  numeric=False)
    for cell in results.cells:
        totals = (cell.data or {}).get("summary", {}) or {}
        totals = totals.get("totals", {}) if isinstance(totals, dict) else {}
        ok = f"{totals.get('repeats_ok', DASH)}/{totals.get('repeats', DASH)}" if totals else DASH
        notes = list(cell.flags)
        if cell.error and cell.status not in ("ok",):
            notes.insert(0, cell.error)
        if cell.status == "missing":
            notes = ["no results file: the cell did not run or its file was removed"]
        table.rows.append([cell.id, cell.label.split(", ")[0], cell.profile_label, str(cell.users or DASH),
                           cell.status, ok, "; ".join(dict.fromkeys(notes)) or ""])
        if not cell.usable:
            table.muted.add(len(table.rows) - 1)
    return table


def latency_table(results: Results) -> Table:
    values = [
        ("delivery p50", lambda c: spread(c, "deliver_p50_ms")),
        ("delivery p95", lambda c: spread(c, "deliver_p95_ms")),
        ("delivery p99", lambda c: spread(c, "deliver_p99_ms")),
        ("ack p50", lambda c: spread(c, "publish_p50_ms")),
        ("ack p99", lambda c: spread(c, "publish_p99_ms")),
        ("connect p50", lambda c: spread(c, "connect_p50_ms")),
        ("connect p99", lambda c: spread(c, "connect_p99_ms")),
        ("deliveries/s", lambda c: spread(c, "deliveries_per_s")),
    ]
    table = Table("Latency (ms) and throughput", ["cell", "users", *[v[0] for v in values]],
                  note="Delivery: publish to receipt at each receiver, from the scheduled send time carried in the "
                       "message. Ack: publish to acknowledgement (the event is in the delivery log). Connect: "
                       "handshake until joined. Median [min–max] across the repeats that were not generator-bound (all "
                       "of them if every one was).")
    return _rows(results, table, values)


def _bytes(cell: CellView) -> str:
    if cell.data is not None and not cell.data.get("uses_proxy", True):
        return "not measured (no proxy)"
    whole = spread(cell, "bytes_per_delivery")
    down, up = cell.get("bytes_down_per_delivery"), cell.get("bytes_up_per_delivery")
    if down is None or up is None:
        return whole
    return f"{whole} ({fmt(down.value)} down + {fmt(up.value)} up)"


def cost_table(results: Results) -> Table:
    values = [
        ("gateway CPU s / 1000 deliveries", lambda c: spread(c, "gateway_cpu_s_per_1000_deliveries")),
        ("gateway CPU % of a core", lambda c: spread(c, "gateway_cpu_pct_mean")),
        ("gateway RSS MB (peak)", lambda c: spread(c, "gateway_rss_mb_max")),
        ("proxy CPU s / 1000 deliveries", lambda c: spread(c, "proxy_cpu_s_per_1000_deliveries")),
        ("bytes / delivery", _bytes),
        ("requests / delivery", lambda c: spread(c, "requests_per_delivery")),
        ("busiest Locust process, % of a core", lambda c: spread(c, "generator_cpu_pct_max")),
        ("other processes, cores", lambda c: spread(c, "other_cores_mean")),
    ]
    table = Table("Cost", ["cell", "users", *[v[0] for v in values]],
                  note="CPU: user + system seconds of the process from Locust's start to its exit, per 1,000 "
                       "deliveries; % of a core: mean of half-second samples while the load ran. Bytes and requests: "
                       "the proxy's counters (HTTP bodies and WebSocket payloads both ways, headers not counted) per "
                       "delivered message. Locust and other processes: how busy the load generator and the rest of "
                       "the machine were.")
    return _rows(results, table, values)


def reliability_table(results: Results) -> Table:
    values = [
        ("deliveries", lambda c: total(c, "deliveries")),
        ("lost", lambda c: total(c, "lost")),
        ("duplicated", lambda c: total(c, "duplicate")),
        ("out of order", lambda c: total(c, "out_of_order")),
        ("recovery gaps", lambda c: total(c, "recovery_gap")),
        ("connect failures", lambda c: total(c, "connect_failures")),
        ("publish failures", lambda c: total(c, "publish_failures")),
        ("proxy cuts", lambda c: total(c, "proxy_cuts")),
        ("sessions resumed", lambda c: total(c, "gateway_resumes")),
        ("events replayed", lambda c: total(c, "gateway_replayed")),
        ("gateway drops", lambda c: total(c, "gateway_dropped")),
    ]
    table = Table("Reliability", ["cell", "users", *[v[0] for v in values]],
                  note="Sums over the repeats that succeeded. Lost / duplicated / out of order: per-sender sequence "
                       "numbers checked at every receiver. Recovery gaps: resumes the gateway could not fill from its "
                       "log. Resumed, replayed and drops: the gateway's own counters (/metrics).")
    return _rows(results, table, values)


def ladder_bound(results: Results) -> float | None:
    """The p99 bound the ladders were run against (one for the run: ``--ladder-bound``)."""
    bounds = {float(c.rung["bound_ms"]) for c in results.ladder if c.rung and c.rung.get("bound_ms")}
    return max(bounds) if bounds else None


def capacity_table(results: Results) -> Table:
    """Every load-ladder step: what it offered, what was measured in its steady window, the CPU
    of the gateway, the proxy and the generator, and what ended its ladder."""
    bound = ladder_bound(results)
    bound_text = f"p99 delivery ≤ {fmt(bound)} ms" if bound is not None else "the bound"
    table = Table(f"Capacity: load ladders (bound: {bound_text}, no loss)",
                  ["series", "step", "users", "room", "publishes/s", "deliveries/s", "delivery p99 ms", "lost",
                   "join p50 / p99 ms", "late joins", "gateway CPU %", "proxy CPU %", "generator CPU %",
                   "generator lag p99 ms", "outcome"],
                  note=f"Each ladder steps the load up on one gateway process until one of these ends it: p99 "
                       f"delivery over the bound ({bound_text}) with the gateway over {GATEWAY_SATURATED_PCT:g}% of its "
                       "core; the load generator behind (its lag p99 over a share of the bound, or a generator process "
                       "over its CPU threshold: manifest.json); the proxy saturated (its one process over "
                       f"{PROXY_SATURATED_PCT:g}% of a core); p99 delivery over the bound; a delivery lost, a publish "
                       "or a connect failed (checked in that order). The steps after that are not run. A saturated "
                       "gateway, a passed bound and a loss are the gateway's own limit; a generator behind or a "
                       "saturated proxy means the ladder did not find the gateway's knee: the last step within the "
                       "bound is a lower bound of what it serves. Each step measures steady fan-out only: "
                       "its users spawn and join first (join p50 / p99: that join storm, not in the window; late "
                       "joins: users that joined after the window opened), then publishing starts and the window "
                       "is measured. CPU: % of one core, mean over the window (generator: its busiest process). "
                       "With WebSocket allowed the users connect straight to the gateway (no proxy); behind "
                       "block-websocket they go through the real nginx, or the aiohttp proxy. One repeat per step.",
                  top=True)
    for cell in results.ladder:
        rung = cell.rung or {}
        users, room = cell.load.get("users"), cell.load.get("room_size")
        offered = float(cell.load.get("publish_rate") or 0) * float(users or 0)
        if not cell.usable:
            outcome = cell.status + (f": {cell.error}" if cell.error else "")
        else:
            outcome = ladder_ends(cell.data or {}, float(rung.get("bound_ms") or 0)) or "within the bound"
        joins = f"{spread(cell, 'connect_p50_ms')} / {spread(cell, 'connect_p99_ms')}" if cell.usable else DASH
        proxy = spread(cell, "proxy_cpu_pct_mean") if (cell.data or {}).get("uses_proxy", True) else "no proxy"
        table.rows.append([str(rung.get("series", "")), str(rung.get("step", "")), str(users or DASH),
                           str(room or DASH), fmt(offered), spread(cell, "deliveries_per_s"),
                           spread(cell, "deliver_p99_ms"), total(cell, "lost"), joins, total(cell, "late_joins"),
                           spread(cell, "gateway_cpu_pct_mean"), proxy, spread(cell, "generator_cpu_pct_max"),
                           spread(cell, "generator_lag_p99_ms"), outcome])
        if not cell.usable:
            table.muted.add(len(table.rows) - 1)
    return table


def floor_table(results: Results) -> Table:
    values = [
        ("delivery p99", lambda c: spread(c, "deliver_p99_ms")),
        ("deliveries/s", lambda c: spread(c, "deliveries_per_s")),
        ("generator send lag p99", lambda c: spread(c, "generator_send_lag_p99_ms")),
        ("generator receive-to-record p99", lambda c: spread(c, "generator_record_p99_ms")),
        ("generator loop lag p99", lambda c: spread(c, "generator_loop_p99_ms")),
        ("busiest generator process, % of a core", lambda c: spread(c, "generator_cpu_pct_max")),
        ("generator-bound repeats", lambda c: total(c, "repeats_generator_bound")),
    ]
    table = Table("The load generator's own lag and CPU", ["cell", "users", *[v[0] for v in values]],
                  note="Send lag: how late the generator's scheduler woke a publish. Receive-to-record: from a read "
                       "returning to its deliveries being recorded. Loop lag: how late its event loop woke a "
                       "timer (a burst of deliveries delays every socket served after the first). A repeat is generator-bound when the larger lag's "
                       "p99 is over the share of the delivery p99 in manifest.json, or a generator process used more "
                       "than its CPU threshold; a cell where most repeats were is kept out of the verdict (its medians "
                       "are over every repeat). Calibration cells run the same users against a "
                       "reference server through the aiohttp proxy's passthrough hop: their numbers are the "
                       "generator's floor on that path, not for the nginx cells.")
    return _rows(results, table, values)


def all_tables(results: Results) -> list[Table]:
    tables = [cells_table(results), latency_table(results), cost_table(results), floor_table(results),
              reliability_table(results)]
    return ([capacity_table(results)] if results.ladder else []) + tables
