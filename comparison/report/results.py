"""A results folder as the report sees it: the manifest, and every cell with a status.

The cells expected are those the manifest planned, plus any ``cells/*.json`` found. A
cell is ``ok``, ``partial`` (some repeats failed: numbers from the others, flagged),
``failed``, ``interrupted``, ``running`` (the run stopped while it ran), ``missing`` (planned,
no file) or ``unreadable`` (a file that is not a cell JSON). Only ``ok`` and ``partial``
cells give numbers; for the others the report says what happened instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..matrix import FAMILY_LABELS, KINDS_BY_KEY
from ..records import lookup

USABLE = ("ok", "partial")


@dataclass(frozen=True, slots=True)
class Traced:
    """A number and where it came from: ``file`` (relative to the results folder) and dotted ``key``."""

    value: float
    file: str
    key: str


@dataclass(slots=True)
class CellView:
    id: str
    file: str  # relative to the results folder
    status: str
    kind: dict[str, Any]
    load: dict[str, Any]
    data: dict[str, Any] | None = None
    error: str | None = None
    flags: list[str] = field(default_factory=list)
    rung: dict[str, Any] | None = None  # a load-ladder step: series, step, bound_ms

    @property
    def usable(self) -> bool:
        """Numbers can be read: the status says so, and the file has a summary and its load."""
        if self.status not in USABLE or self.data is None or not isinstance(self.data.get("summary"), dict):
            return False
        return isinstance((self.data.get("load") or {}).get("users"), int)

    @property
    def calibration(self) -> bool:
        """A calibration cell: the users against a reference server, not the gateway."""
        return self.kind.get("server", "gateway") != "gateway"

    @property
    def generator_bound(self) -> bool:
        """Most of its repeats were generator-bound (``comparison.records.generator_bound``)."""
        if not self.usable:
            return False
        totals = (self.data or {}).get("summary", {}).get("totals", {})
        return 2 * int(totals.get("repeats_generator_bound") or 0) > int(totals.get("repeats_ok") or 0)

    @property
    def comparable(self) -> bool:
        """Its numbers may enter the verdict: usable, a gateway cell, not generator-bound."""
        return self.usable and not self.calibration and not self.generator_bound

    @property
    def key(self) -> str:
        return str(self.kind.get("key", self.id.rsplit("-u", 1)[0]))

    @property
    def users(self) -> int:
        if "users" in self.load:
            return int(self.load["users"])
        suffix = self.id.rsplit("-u", 1)[-1]
        return int(suffix) if suffix.isdigit() else 0

    @property
    def fault(self) -> bool:
        return bool(self.kind.get("fault"))

    @property
    def family(self) -> str:
        return str(self.kind.get("family", ""))

    @property
    def label(self) -> str:
        """Transport and proxy in words: "SSE + POST, block-websocket"."""
        family = FAMILY_LABELS.get(self.family, self.family or self.key)
        if self.kind.get("user") == "sio-default":
            family = "Socket.IO fallback (polling)"
        return f"{family}, {self.profile_label}"

    @property
    def profile_label(self) -> str:
        profile = str(self.kind.get("profile", "?"))
        if profile == "passthrough":
            return "direct" if self.data is None or self.data.get("uses_proxy", True) else "direct (no proxy)"
        return profile

    def get(self, metric: str, stat: str = "median") -> Traced | None:
        """``summary.<metric>.<stat>`` (or ``summary.totals.<metric>`` with stat ``total``)."""
        if not self.usable:
            return None
        key = f"summary.totals.{metric}" if stat == "total" else f"summary.{metric}.{stat}"
        try:
            value = lookup(self.data, key)
        except (KeyError, IndexError, ValueError):
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        return Traced(float(value), self.file, key)

    def load_value(self, name: str) -> Traced | None:
        if self.data is None:
            return None
        value = (self.data.get("load") or {}).get(name)
        return Traced(float(value), self.file, f"load.{name}") if isinstance(value, (int, float)) else None


@dataclass(slots=True)
class Results:
    folder: Path
    manifest: dict[str, Any] | None
    manifest_error: str | None
    cells: list[CellView]
    ladder: list[CellView] = field(default_factory=list)  # the load ladders' steps, in run order

    def ladders(self) -> dict[str, list[CellView]]:
        """Ladder series -> its steps, in order."""
        out: dict[str, list[CellView]] = {}
        for cell in self.ladder:
            out.setdefault(str(cell.rung["series"]), []).append(cell)
        return out

    def cell(self, key: str, users: int | None = None) -> CellView | None:
        for cell in self.cells:
            if cell.key == key and (users is None or cell.users == users):
                return cell
        return None

    @property
    def loads(self) -> list[int]:
        return sorted({c.users for c in self.cells if not c.fault and c.users})

    @property
    def manifest_preset(self) -> str | None:
        """``quick`` or ``full``: the preset the run was made with (None if unknown)."""
        preset = ((self.manifest or {}).get("plan") or {}).get("preset")
        return str(preset) if preset else None

    @property
    def title(self) -> str:
        base = "rtgateway: Socket.IO vs SSE + POST, through proxies"
        return base + (" (SMOKE TEST: quick preset, not a comparison)" if self.manifest_preset == "quick" else "")

    def manifest_value(self, dotted: str) -> Traced | None:
        if self.manifest is None:
            return None
        try:
            value = lookup(self.manifest, dotted)
        except (KeyError, IndexError, ValueError):
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        return Traced(float(value), "manifest.json", dotted)


def _read(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None, "missing"
    except (OSError, ValueError) as exc:
        return None, f"unreadable: {exc}"
    if not isinstance(data, dict):
        return None, "unreadable: not a JSON object"
    return data, None


def load(folder: Path) -> Results:
    manifest, manifest_error = _read(folder / "manifest.json")
    planned: list[dict[str, Any]] = list(((manifest or {}).get("plan") or {}).get("cells") or [])
    seen: set[str] = set()
    cells: list[CellView] = []
    for header in planned:
        cells.append(_cell(folder, str(header.get("file") or f"cells/{header['cell']}.json"), header))
        seen.add(cells[-1].file)
    for path in sorted((folder / "cells").glob("*.json")) if (folder / "cells").is_dir() else []:
        rel = f"cells/{path.name}"
        if rel not in seen:
            cells.append(_cell(folder, rel, {"cell": path.stem}))
    ladder = [c for c in cells if c.rung is not None]
    return Results(folder, manifest, manifest_error, [c for c in cells if c.rung is None], ladder)


def _cell(folder: Path, rel: str, header: dict[str, Any]) -> CellView:
    view = _view(folder, rel, header)
    rung = header.get("rung") or (view.data or {}).get("rung")
    view.rung = dict(rung) if isinstance(rung, dict) and "series" in rung else None
    return view


def _view(folder: Path, rel: str, header: dict[str, Any]) -> CellView:
    data, problem = _read(folder / rel)
    cell_id = str(header.get("cell") or Path(rel).stem)
    kind = dict(header.get("kind") or {})
    load_ = dict(header.get("load") or {})
    if data is None:
        status = "missing" if problem == "missing" else "unreadable"
        if not kind:
            kind = _kind_from_id(cell_id)
        return CellView(cell_id, rel, status, kind, load_, None, problem if status == "unreadable" else
                        "no results file: the cell did not run, or its file was removed")
    if not isinstance(data.get("repeats"), list) or "status" not in data:
        return CellView(cell_id, rel, "unreadable", kind or _kind_from_id(cell_id), load_, None,
                        "not a cell results file (no status or repeats)")
    view = CellView(cell_id, rel, str(data["status"]), dict(data.get("kind") or kind), dict(data.get("load") or load_),
                    data, data.get("error"), [str(f) for f in data.get("flags") or []])
    if view.status in USABLE and not data.get("summary"):
        view.status, view.error = "unreadable", "no summary in the results file"
    return view


def _kind_from_id(cell_id: str) -> dict[str, Any]:
    key = cell_id.rsplit("-u", 1)[0]
    kind = KINDS_BY_KEY.get(key)
    if kind is None:
        return {"key": key}
    from dataclasses import asdict

    return asdict(kind)
