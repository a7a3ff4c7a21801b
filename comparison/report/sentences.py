"""Sentences whose every number is traceable: values read from results files or derived from others.

A ``Sentence`` is a template and named ``Value``s. A value is either read from a results
file (``source``: the file, relative to the results folder, and a dotted key into it) or
derived from other values of the same sentence (``derived``: ``ratio``, ``percent`` or
``sum`` of named values). ``verdict.json`` keeps all of it, so a reader (or a test) can
look every input up in the JSON it came from and recompute every derived number; ``check``
does exactly that. Templates hold no digits of their own: every number in the text is a value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .results import CellView, Traced

Style = Literal["num", "int", "ratio", "pct"]
Op = Literal["ratio", "percent", "sum"]
SIMILAR = 1.1  # a ratio below this reads "about the same"


def fmt(value: float, style: Style = "num") -> str:
    """How a value is written in the text (three significant digits for measurements)."""
    if style == "ratio":
        return f"{value:.1f}"
    if style == "pct":
        return f"{value:.0f}"
    if style == "int":
        return f"{round(value):,}"
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{value:,.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def compute(op: Op, inputs: Sequence[float]) -> float:
    if op == "sum":
        return float(sum(inputs))
    a, b = inputs
    if b == 0:
        raise ZeroDivisionError(op)
    return a / b if op == "ratio" else 100 * a / b


@dataclass(frozen=True, slots=True)
class Value:
    value: float
    style: Style
    source: dict[str, str] | None = None
    derived: dict[str, Any] | None = None

    @property
    def display(self) -> str:
        return fmt(self.value, self.style)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "display": self.display, "style": self.style}
        if self.source is not None:
            out["source"] = self.source
        if self.derived is not None:
            out["derived"] = self.derived
        return out


@dataclass(slots=True)
class Sentence:
    id: str
    section: str
    template: str = ""
    values: dict[str, Value] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.template.format(**{name: v.display for name, v in self.values.items()})

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "section": self.section, "text": self.text, "template": self.template,
                "values": {name: v.to_json() for name, v in self.values.items()}}


class Builder:
    """Collects the values of one sentence; ``put`` and ``derive`` return placeholders."""

    def __init__(self, sentence_id: str, section: str) -> None:
        self.sentence = Sentence(sentence_id, section)

    def put(self, name: str, traced: Traced, style: Style = "num") -> str:
        self.sentence.values[name] = Value(traced.value, style, {"file": traced.file, "key": traced.key})
        return "{" + name + "}"

    def derive(self, name: str, op: Op, of: Sequence[str], style: Style = "ratio") -> str:
        inputs = [self.sentence.values[n].value for n in of]
        self.sentence.values[name] = Value(compute(op, inputs), style, derived={"op": op, "of": list(of)})
        return "{" + name + "}"

    def value(self, name: str) -> float:
        return self.sentence.values[name].value

    def done(self, template: str) -> Sentence:
        self.sentence.template = template
        return self.sentence


# -- helpers the sections share ----------------------------------------------------------


def users_of(cell: CellView) -> Traced:
    """The user count of a usable cell, from its results file."""
    traced = cell.load_value("users")
    assert traced is not None, "a usable cell has load.users"
    return traced


def usable(*cells: CellView | None) -> bool:
    return all(c is not None and c.comparable for c in cells)


def transport_of(cell: CellView) -> str:
    """"SSE + POST", "Socket.IO WebSocket", ...: the cell's label without its proxy."""
    return cell.label.split(",")[0]


def beyond_spread(winner: CellView, loser: CellView, metric: str) -> bool:
    """A difference counts only when it is larger than the spread: two or more repeats each, and
    the winner's worst repeat still better than the loser's best."""
    counts = [cell.get(metric, "n") for cell in (winner, loser)]
    worst, best = winner.get(metric, "max"), loser.get(metric, "min")
    if any(n is None or n.value < 2 for n in counts) or worst is None or best is None:
        return False
    return worst.value < best.value


def differs(x: CellView, y: CellView, metric: str) -> bool:
    """One of the two is lower than the other beyond the spread of their repeats."""
    return beyond_spread(x, y, metric) or beyond_spread(y, x, metric)


NO_DIRECTION_QUICK = "one short repeat each: no direction claimed"
NO_DIRECTION = "within what their repeats vary by: no direction claimed"


def no_direction(quick: bool) -> str:
    return NO_DIRECTION_QUICK if quick else NO_DIRECTION


def compare(b: Builder, name: str, subject: str, other: str, cells: tuple[CellView, CellView], metric: str,
            quick: bool = False) -> str:
    """``subject`` against ``other`` where lower is better: "3.4× lower", "2.0× higher", or "about the
    same"; only when the two ``cells`` differ on ``metric`` beyond their repeats' spread, and never
    in a smoke test (``quick``): otherwise it says why no direction is claimed."""
    x, y = b.value(subject), b.value(other)
    if x <= 0 or y <= 0:
        return "not comparable (a zero)"
    if quick or not differs(*cells, metric):
        return no_direction(quick)
    if x <= y:
        ratio = b.derive(name, "ratio", [other, subject])
        word = "lower"
    else:
        ratio = b.derive(name, "ratio", [subject, other])
        word = "higher"
    if b.value(name) < SIMILAR:
        return f"about the same, {ratio}×"
    return f"{ratio}× {word}, beyond what their repeats vary by"


WIDE: Final = 2.0  # a cell whose slowest repeat's p99 is over this many times its fastest's: named


def wide(cell: CellView, metric: str = "deliver_p99_ms") -> bool:
    """The repeats the cell's median is taken over disagree by more than ``WIDE``× on ``metric``."""
    low, high = cell.get(metric, "min"), cell.get(metric, "max")
    return low is not None and high is not None and low.value > 0 and high.value > WIDE * low.value


def rests_on_wide(b: Builder, *cells: CellView) -> str:
    """" (X's repeats ranged a to b ms: see Caveats)" for every cell of a sentence whose p99 repeats
    spread widely, so the sentence says what it rests on; empty when none does."""
    notes = []
    for i, cell in enumerate(cells):
        if not wide(cell):
            continue
        low, high = cell.get("deliver_p99_ms", "min"), cell.get("deliver_p99_ms", "max")
        assert low is not None and high is not None
        notes.append(f"{cell.id}'s p99 ranged {b.put(f'wide_lo{i}', low)} to {b.put(f'wide_hi{i}', high)} ms "
                     "over its repeats")
    if not notes:
        return ""
    return " (this rests on cells whose repeats spread widely: " + "; ".join(notes) + "; see Caveats)"


def put_metrics(b: Builder, cell: CellView, prefix: str, metrics: Sequence[tuple[str, str]]) -> bool:
    """Put ``prefix_short`` for each (metric, short); False if one is missing."""
    for metric, short in metrics:
        traced = cell.get(metric)
        if traced is None:
            return False
        b.put(f"{prefix}_{short}", traced)
    return True


def check(sentence: dict[str, Any], resolve: Callable[[str, str], Any]) -> list[str]:
    """Problems with one sentence of ``verdict.json``: a source that does not hold its value, a
    derived value that does not recompute, a display that is not its value, a text that is not
    its template. ``resolve(file, key)`` reads a results file. Empty when all is traceable."""
    problems: list[str] = []
    values = sentence["values"]
    for name, v in values.items():
        if fmt(v["value"], v["style"]) != v["display"]:
            problems.append(f"{name}: display {v['display']!r} is not {v['value']!r}")
        if "source" in v:
            try:
                found = resolve(v["source"]["file"], v["source"]["key"])
            except (KeyError, IndexError, OSError, ValueError) as exc:
                problems.append(f"{name}: {v['source']} unreadable ({exc!r})")
                continue
            if not isinstance(found, (int, float)) or not math.isclose(float(found), v["value"], rel_tol=1e-9):
                problems.append(f"{name}: {v['source']} holds {found!r}, not {v['value']!r}")
        elif "derived" in v:
            inputs = [values[n]["value"] for n in v["derived"]["of"]]
            if not math.isclose(compute(v["derived"]["op"], inputs), v["value"], rel_tol=1e-9):
                problems.append(f"{name}: {v['derived']} does not give {v['value']!r}")
        else:
            problems.append(f"{name}: neither sourced nor derived")
    text = sentence["template"].format(**{n: v["display"] for n, v in values.items()})
    if text != sentence["text"]:
        problems.append("the text is not its template filled in")
    return problems
