"""The results of a cell as JSON: one record per repeat, and a summary across repeats.

Pure functions over plain data, shared by the runner (which writes ``cells/<cell>.json``)
and the report (which reads it). A cell file looks like::

    {"schema": 1, "cell": "sse-block-u100", "kind": {...}, "load": {...}, "timing": {...},
     "status": "ok" | "partial" | "failed" | "interrupted", "error": null, "flags": [...],
     "repeats": [{"repeat": 1, "status": "ok", "requests": {...}, "reliability": {...},
                  "cpu": {...}, "proxy": {...}, "derived": {...}, ...}, ...],
     "summary": {"deliver_p99_ms": {"median": 12, "min": 11, "max": 14, "n": 3}, ...,
                 "totals": {"lost": 0, ...}}}

Every number the report prints is one of ``summary``'s (a median with its min-max over the
repeats that succeeded, generator-bound or not: leaving those out would raise the medians, since a
fast repeat's small p99 is the easiest for the generator's lag to pass) or ``summary.totals`` (a sum
over the same repeats).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping
from typing import Any, Final

SCHEMA: Final = 1
SATURATED_PCT: Final = 90.0  # Locust above this share of one core: the load generator was the bottleneck
# A repeat is generator-bound (kept out of the verdict) when the generator's own lag p99 is over
# this share of the measured delivery p99, or one of its processes used more than this % of a core.
GENERATOR_LAG_SHARE: Final = 0.2
GENERATOR_CPU_PCT: Final = 70.0
BUSY_CORES: Final = 0.5  # other processes above this many cores: the machine was not quiet
# A load-ladder step whose proxy (aiohttp or nginx's worker, one process) used more than this % of a
# core in the measured window ended its ladder there: higher steps would measure the proxy.
PROXY_SATURATED_PCT: Final = 90.0
# A gateway step past the bound with the gateway over this share of its core: the gateway's own knee.
GATEWAY_SATURATED_PCT: Final = 90.0

# Delivery failures as loadtests/users.py names them -> the keys used here.
RELIABILITY_NAMES: Final = {"lost": "lost", "duplicate": "duplicate", "out-of-order": "out_of_order",
                            "recovery gap": "recovery_gap"}

# summary metric -> its path in a repeat record
METRICS: Final[dict[str, tuple[str, ...]]] = {
    "deliver_p50_ms": ("requests", "deliver", "p50_ms"),
    "deliver_p95_ms": ("requests", "deliver", "p95_ms"),
    "deliver_p99_ms": ("requests", "deliver", "p99_ms"),
    "deliver_avg_ms": ("requests", "deliver", "avg_ms"),
    "publish_p50_ms": ("requests", "publish", "p50_ms"),
    "publish_p95_ms": ("requests", "publish", "p95_ms"),
    "publish_p99_ms": ("requests", "publish", "p99_ms"),
    "connect_p50_ms": ("requests", "connect", "p50_ms"),
    "connect_p99_ms": ("requests", "connect", "p99_ms"),
    "deliveries": ("requests", "deliver", "count"),
    "deliveries_per_s": ("derived", "deliveries_per_s"),
    "gateway_cpu_s_per_1000_deliveries": ("derived", "gateway_cpu_s_per_1000_deliveries"),
    "proxy_cpu_s_per_1000_deliveries": ("derived", "proxy_cpu_s_per_1000_deliveries"),
    "bytes_per_delivery": ("derived", "bytes_per_delivery"),
    "bytes_down_per_delivery": ("derived", "bytes_down_per_delivery"),
    "bytes_up_per_delivery": ("derived", "bytes_up_per_delivery"),
    "requests_per_delivery": ("derived", "requests_per_delivery"),
    "gateway_cpu_pct_mean": ("sampling", "cpu_pct", "gateway", "mean"),
    "proxy_cpu_pct_mean": ("sampling", "cpu_pct", "proxy", "mean"),
    "locust_cpu_pct_mean": ("sampling", "cpu_pct", "locust", "mean"),
    "locust_cpu_pct_max": ("sampling", "cpu_pct", "locust", "max"),
    "gateway_rss_mb_max": ("sampling", "rss_mb_max", "gateway"),
    "proxy_rss_mb_max": ("sampling", "rss_mb_max", "proxy"),
    "other_cores_mean": ("sampling", "other_cores_mean"),
    "generator_send_lag_p99_ms": ("requests", "generator", "send_lag", "p99_ms"),
    "generator_record_p99_ms": ("requests", "generator", "receive_to_record", "p99_ms"),
    "generator_loop_p99_ms": ("requests", "generator", "loop_lag", "p99_ms"),
    "generator_lag_p99_ms": ("derived", "generator_lag_p99_ms"),
    "generator_cpu_pct_max": ("sampling", "generator_cpu_pct_max"),
}

# summary.totals -> its path in a repeat record, summed over the repeats that succeeded
TOTALS: Final[dict[str, tuple[str, ...]]] = {
    "lost": ("reliability", "lost"),
    "duplicate": ("reliability", "duplicate"),
    "out_of_order": ("reliability", "out_of_order"),
    "recovery_gap": ("reliability", "recovery_gap"),
    "connect_failures": ("reliability", "connect_failures"),
    "publish_failures": ("reliability", "publish_failures"),
    "deliveries": ("requests", "deliver", "count"),
    "publishes": ("requests", "publish", "count"),
    "upgrades_websocket": ("requests", "upgrade_websocket"),
    "upgrades_refused": ("requests", "upgrade_refused"),
    "proxy_cuts": ("proxy", "totals", "cuts_drop"),
    "proxy_idle_cuts": ("proxy", "totals", "cuts_idle"),
    "proxy_upgrades_refused": ("proxy", "totals", "upgrades_refused"),
    "gateway_replayed": ("gateway_metrics", "gateway_replayed_total"),
    "gateway_recovery_gaps": ("gateway_metrics", "gateway_recovery_gaps_total"),
    "late_joins": ("requests", "late_joins"),
    "gateway_dropped": ("gateway_metrics", "dropped_total"),
    "gateway_duplicates": ("gateway_metrics", "gateway_duplicates_total"),
    "gateway_resumes": ("gateway_metrics", "resumed_connects"),
}


def dig(data: Any, path: Iterable[str]) -> Any:
    """``data[a][b]...`` or ``None`` where a step is missing."""
    for step in path:
        if not isinstance(data, Mapping) or step not in data:
            return None
        data = data[step]
    return data


def lookup(data: Any, dotted: str) -> Any:
    """``lookup(cell, "summary.deliver_p99_ms.median")``; ``KeyError`` if a step is missing."""
    for step in dotted.split("."):
        if isinstance(data, list):
            data = data[int(step)]
        elif isinstance(data, Mapping) and step in data:
            data = data[step]
        else:
            raise KeyError(dotted)
    return data


# -- one repeat ----------------------------------------------------------------------


def request_summary(stats: Mapping[tuple[str, str], Mapping[str, Any]], user: str) -> dict[str, Any]:
    """Connect, publish and delivery numbers of one transport label from Locust's entries."""
    out: dict[str, Any] = {kind: dict(stats.get((kind, user), {})) or None
                           for kind in ("connect", "publish", "deliver")}
    out["upgrade_websocket"] = int((stats.get(("upgrade", f"{user}: websocket")) or {}).get("count", 0))
    out["upgrade_refused"] = int((stats.get(("upgrade", f"{user}: refused")) or {}).get("count", 0))
    # With --settle (the load ladders): the measured window opened after the joins (its start is
    # Locust's window, ``locust_run.read_stats``); users that joined after it opened.
    out["steady_window"] = ("generator", "steady window") in stats
    out["late_joins"] = int((stats.get(("generator", "late join")) or {}).get("count", 0))
    # The generator's own lag (loadtests/users.py): scheduled vs actual send; a read to its record.
    out["generator"] = {key: dict(stats.get(("generator", name), {})) or None
                        for key, name in (("send_lag", "send lag"), ("receive_to_record", "receive-to-record"),
                                          ("loop_lag", "loop lag"))}
    return out


def reliability(stats: Mapping[tuple[str, str], Mapping[str, Any]], user: str) -> dict[str, int]:
    out = {key: int((stats.get(("delivery", name)) or {}).get("failures", 0))
           for name, key in RELIABILITY_NAMES.items()}
    out["connect_failures"] = int((stats.get(("connect", user)) or {}).get("failures", 0))
    out["publish_failures"] = int((stats.get(("publish", user)) or {}).get("failures", 0))
    return out


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_prometheus(text: str) -> dict[str, float]:
    """``{"name{labels}": value}`` of a Prometheus text exposition (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            try:
                out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
            except ValueError:
                continue
    return out


def gateway_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """What the gateway's counters did during the run, with the sums the report uses."""
    delta = {k: round(v - before.get(k, 0.0), 3) for k, v in after.items() if k.endswith("_total") or "_total{" in k}
    summed: dict[str, float] = {}
    for key, value in delta.items():
        name = key.split("{", 1)[0]
        summed[name] = summed.get(name, 0.0) + value
    out: dict[str, float] = dict(sorted(delta.items()))
    out.update({name: value for name, value in summed.items() if name not in out})
    out["dropped_total"] = summed.get("gateway_dropped_total", 0.0)
    out["resumed_connects"] = sum(v for k, v in delta.items()
                                  if k.startswith("gateway_connects_total{") and 'resumed="no"' not in k)
    return out


def proxy_totals(classes: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    names = {name for counters in classes.values() for name in counters}
    return {name: sum(int(c.get(name, 0)) for c in classes.values()) for name in sorted(names)}


def _per(value: float | None, count: float | None, scale: float = 1.0, digits: int = 4) -> float | None:
    if value is None or not count or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(value / count * scale, digits)


def derive(record: dict[str, Any]) -> dict[str, Any]:
    """Per-delivery costs of one repeat; ``None`` where an input was not measured."""
    deliveries = dig(record, ("requests", "deliver", "count"))
    cpu = record.get("cpu") or {}
    totals = dig(record, ("proxy", "totals")) or None
    window = dig(record, ("locust", "window_s"))
    down = totals["bytes_to_client"] if totals else None
    up = totals["bytes_to_upstream"] if totals else None
    # Over a steady window: every delivery in it, over its length (a one-room step publishes a few
    # times a second, so the span from the first to the last delivery would be shorter than it).
    steady = bool(dig(record, ("requests", "steady_window")))
    return {
        "deliveries_per_s": (_per(deliveries, window, digits=2) if steady and window else
                             dig(record, ("requests", "deliver", "rps")) or _per(deliveries, window, digits=2)),
        "gateway_cpu_s_per_1000_deliveries": _per(cpu.get("gateway_s"), deliveries, 1000),
        "proxy_cpu_s_per_1000_deliveries": _per(cpu.get("proxy_s"), deliveries, 1000),
        "locust_cpu_s_per_1000_deliveries": _per(cpu.get("locust_s"), deliveries, 1000),
        "bytes_per_delivery": _per(None if totals is None else down + up, deliveries, digits=1),
        "bytes_down_per_delivery": _per(down, deliveries, digits=1),
        "bytes_up_per_delivery": _per(up, deliveries, digits=1),
        "requests_per_delivery": _per(None if totals is None else totals["requests"], deliveries),
        "generator_lag_p99_ms": generator_lag(record),
    }


def generator_lag(record: dict[str, Any]) -> float | None:
    """The largest of the generator's lags at p99 (ms): what it adds to a measured latency."""
    lags = [v for key in ("send_lag", "receive_to_record", "loop_lag")
            if isinstance(v := dig(record, ("requests", "generator", key, "p99_ms")), (int, float))]
    return max(lags) if lags else None


def repeat_flags(record: dict[str, Any]) -> dict[str, bool]:
    # The busiest Locust process (with --processes, a worker: the master only aggregates).
    locust = dig(record, ("sampling", "generator_cpu_pct_max"))
    others = dig(record, ("sampling", "other_cores_mean"))
    return {"load_generator_saturated": locust is not None and locust > SATURATED_PCT,
            "busy_machine": others is not None and others > BUSY_CORES,
            "generator_bound": generator_bound(record)}


def generator_bound(record: dict[str, Any]) -> bool:
    """Whether the load generator, not the server, may have set this repeat's numbers."""
    lag = dig(record, ("derived", "generator_lag_p99_ms"))
    p99 = dig(record, ("requests", "deliver", "p99_ms"))
    cpu = dig(record, ("sampling", "generator_cpu_pct_max"))
    return bool((lag is not None and p99 and lag > GENERATOR_LAG_SHARE * p99)
                or (cpu is not None and cpu > GENERATOR_CPU_PCT))


def generator_behind(record: dict[str, Any], bound_ms: float) -> bool:
    """Whether the generator may not have offered a load-ladder step's load: its lag p99 over
    ``GENERATOR_LAG_SHARE`` of the ladder's bound, or one of its processes over ``GENERATOR_CPU_PCT``."""
    lag = dig(record, ("derived", "generator_lag_p99_ms"))
    cpu = dig(record, ("sampling", "generator_cpu_pct_max"))
    return bool((lag is not None and lag > GENERATOR_LAG_SHARE * bound_ms)
                or (cpu is not None and cpu > GENERATOR_CPU_PCT))


# -- a cell across its repeats --------------------------------------------------------


def spread(values: list[float]) -> dict[str, Any]:
    return {"median": round(float(statistics.median(values)), 4), "min": round(float(min(values)), 4),
            "max": round(float(max(values)), 4), "n": len(values)}


def summarise(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max of every metric over the repeats that succeeded; totals summed."""
    good = [r for r in repeats if r.get("status") == "ok"]
    summary: dict[str, Any] = {}
    for name, path in METRICS.items():
        values = [v for r in good if isinstance(v := dig(r, path), (int, float)) and not isinstance(v, bool)]
        summary[name] = spread(values) if values else None
    totals: dict[str, Any] = {}
    for name, path in TOTALS.items():
        values = [dig(r, path) for r in good]
        numbers = [v for v in values if isinstance(v, (int, float))]
        totals[name] = (int(sum(numbers)) if all(float(v).is_integer() for v in numbers) else sum(numbers)) \
            if numbers else None
    totals["repeats_ok"] = len(good)
    totals["repeats"] = len(repeats)
    totals["repeats_saturated"] = sum(1 for r in good if dig(r, ("flags", "load_generator_saturated")))
    totals["repeats_busy_machine"] = sum(1 for r in good if dig(r, ("flags", "busy_machine")))
    totals["repeats_generator_bound"] = sum(1 for r in good if dig(r, ("flags", "generator_bound")))
    summary["totals"] = totals
    return summary


def cell_status(repeats: list[dict[str, Any]], expected: int, interrupted: bool) -> str:
    good = sum(1 for r in repeats if r.get("status") == "ok")
    if interrupted:
        return "interrupted"
    if good == 0:
        return "failed"
    return "ok" if good == expected else "partial"


def cell_flags(summary: Mapping[str, Any], repeats: list[dict[str, Any]]) -> list[str]:
    """Sentences the report shows next to the cell: nothing measured here is silently kept."""
    flags: list[str] = []
    for r in repeats:
        n = r.get("repeat")
        if r.get("status") != "ok":
            flags.append(f"repeat {n} failed: {r.get('error') or 'unknown error'}")
            continue
        locust = dig(r, ("sampling", "generator_cpu_pct_max"))
        if dig(r, ("flags", "load_generator_saturated")):
            flags.append(f"repeat {n}: the load generator saturated (Locust at {locust:.0f}% of a core on average): "
                         "its latencies include the load generator's own queueing")
        if dig(r, ("flags", "generator_bound")):
            flags.append(f"repeat {n}: generator-bound (its lag p99 {dig(r, ('derived', 'generator_lag_p99_ms'))} ms "
                         f"vs delivery p99 {dig(r, ('requests', 'deliver', 'p99_ms'))} ms; busiest generator process "
                         f"{dig(r, ('sampling', 'generator_cpu_pct_max'))}% of a core)")
        others = dig(r, ("sampling", "other_cores_mean"))
        if dig(r, ("flags", "busy_machine")):
            flags.append(f"repeat {n}: other processes on the machine used {others:.2f} cores on average")
        if dig(r, ("locust", "window_s")) is None:
            flags.append(f"repeat {n}: no load window in Locust's stats; CPU shares cover the whole Locust process")
    return flags


def ladder_ends(document: Mapping[str, Any], bound_ms: float) -> str | None:
    """Why a load-ladder step is its ladder's last (None: the next step runs): no numbers; the
    gateway over ``GATEWAY_SATURATED_PCT`` of its core with p99 past the bound; a generator that
    could not keep up or a proxy over ``PROXY_SATURATED_PCT`` of a core (then the
    limit was not the gateway's); p99 over the bound; a loss, a failed publish or connect."""
    summary = document.get("summary") or {}
    totals = summary.get("totals") or {}
    p99 = (summary.get("deliver_p99_ms") or {}).get("median")
    if document.get("status") not in ("ok", "partial") or p99 is None:
        return f"it has no numbers ({document.get('status')})"
    # A gateway on a full core past the bound is its own limit, whatever else lagged with it.
    gateway = (summary.get("gateway_cpu_pct_mean") or {}).get("median")
    if p99 > bound_ms and gateway is not None and gateway > GATEWAY_SATURATED_PCT:
        return "the gateway saturated its core and p99 delivery passed the bound"
    # Then: the load was not offered as planned. Against the bound, not the step's own p99:
    # 2 ms of generator lag beside a p99 of 8 ms cannot carry a step past 250 ms.
    if any(generator_behind(r, bound_ms) for r in document.get("repeats") or [] if r.get("status") == "ok"):
        return "the load generator could not keep up"
    proxy = (summary.get("proxy_cpu_pct_mean") or {}).get("median")
    if proxy is not None and proxy > PROXY_SATURATED_PCT:
        return "the proxy saturated"
    if p99 > bound_ms:
        return "p99 delivery passed the bound"
    for name, why in (("lost", "deliveries were lost"), ("publish_failures", "publishes failed"),
                      ("connect_failures", "connects failed")):
        if totals.get(name):
            return why
    return None
