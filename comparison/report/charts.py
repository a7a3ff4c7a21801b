"""The report's four charts as PNG files (matplotlib, Agg: no display needed).

Every bar or point is a median across repeats with a min-max whisker; a cell without numbers
(failed, missing) is drawn as an "n/a" label where its bar would be, never as a zero.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from .results import CellView, Results

COLORS: Final = {"sio-websocket-direct": "#4c72b0", "sse-direct": "#55a868", "sio-polling-direct": "#c44e52",
                 "sio-polling-block": "#dd8452", "sse-block": "#2a9d8f"}
FALLBACK_COLORS: Final = ("#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd")
CHARTS: Final = {
    "latency_by_transport.png": "Delivery latency percentiles by transport",
    "latency_vs_load.png": "Delivery latency vs load",
    "cpu_per_delivery.png": "Gateway CPU per delivery",
    "bytes_per_delivery.png": "Bytes per delivered message (bodies and WebSocket payloads; headers not counted)",
}


def _kinds(results: Results) -> list[str]:
    keys: list[str] = []
    for cell in results.cells:
        if not cell.fault and cell.key not in keys:
            keys.append(cell.key)
    return keys


def _color(key: str, index: int) -> str:
    return COLORS.get(key, FALLBACK_COLORS[index % len(FALLBACK_COLORS)])


def _label(results: Results, key: str) -> str:
    cell = results.cell(key)
    return cell.label if cell is not None else key


def _tick(results: Results, key: str) -> str:
    """An axis label short enough not to run into its neighbours."""
    transport, _, profile = _label(results, key).partition(", ")
    return "\n".join([*textwrap.wrap(transport, 14), profile])


def _stat(cell: CellView | None, metric: str) -> tuple[float, float, float] | None:
    if cell is None or not cell.usable:
        return None
    med, lo, hi = cell.get(metric), cell.get(metric, "min"), cell.get(metric, "max")
    if med is None or lo is None or hi is None:
        return None
    return med.value, med.value - lo.value, hi.value - med.value


def _na(ax: Axes, x: float, why: str) -> None:
    ax.text(x, 0.02, f"n/a\n({why})", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
            fontsize=7, color="#777777")


def _log_if_wide(ax: Axes, values: list[float]) -> None:
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 30:
        ax.set_yscale("log")


def latency_by_transport(results: Results, path: Path) -> None:
    kinds = _kinds(results)
    loads = results.loads or [0]
    fig, axes = plt.subplots(1, len(loads), figsize=(5.2 * len(loads) + 1, 4.6), squeeze=False, sharey=True)
    percentiles = (("deliver_p50_ms", "p50", 0.45), ("deliver_p95_ms", "p95", 0.7), ("deliver_p99_ms", "p99", 1.0))
    width = 0.26
    seen: list[float] = []
    for ax, users in zip(axes[0], loads, strict=True):
        for i, key in enumerate(kinds):
            cell = results.cell(key, users)
            stats = [_stat(cell, m) for m, _, _ in percentiles]
            if all(s is None for s in stats):
                _na(ax, (i + 0.5) / len(kinds), cell.status if cell else "not run")
                continue
            for j, ((_, name, alpha), s) in enumerate(zip(percentiles, stats, strict=True)):
                if s is None:
                    continue
                x = i + (j - 1) * width
                ax.bar(x, s[0], width, yerr=[[s[1]], [s[2]]], color=_color(key, i), alpha=alpha,
                       capsize=2, error_kw={"elinewidth": 0.8}, label=name if i == 0 else None)
                seen.append(s[0])
        ax.set_xticks(range(len(kinds)), [_tick(results, k) for k in kinds], fontsize=7)
        ax.set_title(f"{users} users", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("delivery latency, ms (median of repeats, min-max)")
    _log_if_wide(axes[0][0], seen)
    axes[0][0].legend(title="bars: p50 / p95 / p99", fontsize=7, title_fontsize=7, loc="upper left")
    fig.suptitle(CHARTS[path.name])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_vs_load(results: Results, path: Path) -> None:
    kinds = _kinds(results)
    fig, ax = plt.subplots(figsize=(10.5, 4.6))
    seen: list[float] = []
    for i, key in enumerate(kinds):
        for metric, style, suffix in (("deliver_p99_ms", "-o", "p99"), ("deliver_p50_ms", "--.", "p50")):
            xs, ys, lo, hi = [], [], [], []
            for users in results.loads:
                s = _stat(results.cell(key, users), metric)
                if s is not None:
                    xs.append(users)
                    ys.append(s[0])
                    lo.append(s[1])
                    hi.append(s[2])
            if xs:
                ax.errorbar(xs, ys, yerr=[lo, hi], fmt=style, color=_color(key, i), capsize=3, linewidth=1.4,
                            label=f"{_label(results, key)} ({suffix})", alpha=1.0 if suffix == "p99" else 0.6)
                seen += ys
    ax.set_xlabel("users (room size and publish rate fixed)")
    ax.set_ylabel("delivery latency, ms")
    ax.set_xticks(results.loads)
    _log_if_wide(ax, seen)
    ax.grid(alpha=0.3)
    # Beside the plot, not over it: the lines start where a legend in a corner would sit.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_title(CHARTS[path.name] + " (solid p99, dashed p50)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _grouped(results: Results, path: Path, metric: str, ylabel: str, stack: tuple[str, str] | None = None) -> None:
    kinds = _kinds(results)
    loads = results.loads or [0]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.6 * len(kinds) + 2), 4.6))
    width = 0.8 / len(loads)
    for li, users in enumerate(loads):
        for i, key in enumerate(kinds):
            cell = results.cell(key, users)
            x = i + (li - (len(loads) - 1) / 2) * width
            s = _stat(cell, metric)
            if s is None:
                ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=7, color="#777777")
                continue
            alpha = 0.55 + 0.45 * (li + 1) / len(loads)
            if stack is not None:
                down, up = _stat(cell, stack[0]), _stat(cell, stack[1])
                if down is not None and up is not None:
                    ax.bar(x, down[0], width * 0.92, color=_color(key, i), alpha=alpha)
                    ax.bar(x, up[0], width * 0.92, bottom=down[0], color=_color(key, i), alpha=alpha * 0.5,
                           hatch="//", edgecolor="white")
            else:
                ax.bar(x, s[0], width * 0.92, color=_color(key, i), alpha=alpha)
            ax.errorbar(x, s[0], yerr=[[s[1]], [s[2]]], fmt="none", ecolor="#333333", capsize=2, elinewidth=0.8)
            ax.text(x, s[0] + s[2], f"{users}u", ha="center", va="bottom", fontsize=6, color="#444444")
    ax.set_xticks(range(len(kinds)), [_tick(results, k) for k in kinds], fontsize=7)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    note = "bars per load level (label: users), median of repeats, min-max whiskers"
    if stack is not None:
        note += "; solid: server to client, hatched: client to server"
    ax.set_title(CHARTS[path.name] + "\n" + note, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cpu_per_delivery(results: Results, path: Path) -> None:
    _grouped(results, path, "gateway_cpu_s_per_1000_deliveries", "gateway CPU-seconds per 1000 deliveries")


def bytes_per_delivery(results: Results, path: Path) -> None:
    _grouped(results, path, "bytes_per_delivery", "bytes per delivered message (proxy counters)",
             stack=("bytes_down_per_delivery", "bytes_up_per_delivery"))


def draw_all(results: Results, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    drawers = {"latency_by_transport.png": latency_by_transport, "latency_vs_load.png": latency_vs_load,
               "cpu_per_delivery.png": cpu_per_delivery, "bytes_per_delivery.png": bytes_per_delivery}
    out: dict[str, Path] = {}
    for name, draw in drawers.items():
        draw(results, folder / name)
        out[name] = folder / name
    return out
