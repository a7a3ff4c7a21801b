"""``python -m comparison run`` and ``report`` end to end, on a tiny matrix, and on bad input.

The tiny matrix (two cells behind the WebSocket-blocking proxy, one three-second repeat
each) runs once for the module as a real subprocess; the report is then checked against
its own results: every number in the verdict is looked up in the JSON it names (or
recomputed from the values it was derived from), and the HTML opens in Chromium cleanly.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .servers import ROOT, timeout

# Runs alone (a load generator). Whichever test comes first also sets up the module's
# fixtures: the tiny comparison (bounded at 150 s) and its report, hence the longer timeout.
pytestmark = [pytest.mark.serial, pytest.mark.timeout(timeout(240))]

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The calibration cells: each user type against its reference server (the raw SSE server; Node's socket.io).
TINY = ["--quick", "--cells", "sse-block,sio-polling-block,sse-reference,sio-websocket-reference,sio-polling-reference",
        "--users", "6", "--repeats", "1", "--duration", "3", "--warmup", "1", "--processes", "2"]
CELLS = ("sse-block-u6", "sio-polling-block-u6", "sse-reference-u6", "sio-websocket-reference-u6",
         "sio-polling-reference-u6")
# Words that state a direction or a ratio: a smoke test's verdict has none.
DIRECTION = re.compile(r"×|\bwins?\b|\blower\b|\bhigher\b|% of its")
# A tiny load ladder in the same run: two steps of SSE + POST with WebSocket allowed (no proxy in
# the path), each joining first and then measuring 2 s of steady load, against a generous bound.
LADDER = ["--ladder", "--ladder-kinds", "sse-direct", "--ladder-users", "4,8", "--ladder-room", "0",
          "--ladder-duration", "2", "--ladder-join-margin", "1", "--ladder-bound", "5000"]
LADDER_CELLS = ("ladder-sse-direct-r10-u4-p8", "ladder-sse-direct-r10-u8-p16")


async def comparison(*args: str, within: float = 60) -> tuple[int, str]:
    """``python -m comparison ARGS`` from the repository root: (exit code, stdout + stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "comparison", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout(within))
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return int(proc.returncode or 0), out.decode(errors="replace")


@pytest.fixture(scope="module")
async def results(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Path]:
    folder = tmp_path_factory.mktemp("comparison") / "results"
    code, out = await comparison("run", *TINY, *LADDER, "--out", str(folder), within=150)
    assert code == 0, out[-3000:]
    yield folder


@pytest.fixture(scope="module")
async def report(results: Path) -> Path:
    code, out = await comparison("report", str(results))
    assert code == 0, out[-3000:]
    return results


def read(path: Path) -> Any:
    return json.loads(path.read_text())


def walk(data: Any, dotted: str) -> Any:
    for step in dotted.split("."):
        data = data[int(step)] if isinstance(data, list) else data[step]
    return data


def recompute(op: str, inputs: list[float]) -> float:
    if op == "sum":
        return sum(inputs)
    a, b = inputs
    return a / b if op == "ratio" else 100 * a / b


async def test_tiny_matrix_writes_every_result(results: Path):
    manifest = read(results / "manifest.json")
    assert manifest["completed"] is True and manifest["interrupted"] is False
    assert manifest["machine"]["cores_logical"] >= 1 and manifest["machine"]["cpu_model"]
    assert manifest["versions"]["python-socketio"] and manifest["versions"]["uvicorn"]
    assert manifest["versions"]["locust"] and manifest["versions"]["uvicorn"] and manifest["versions"]["fastapi"]
    assert manifest["gateway"]["settings"]["ping_interval"] > 0
    assert manifest["command"].startswith("python -m comparison run --quick --cells sse-block,sio-polling-block")
    assert manifest["gateway"]["command"].startswith("python -m gateway")
    assert manifest["load_generator"]["processes"] == 2 and "pinning" in manifest["load_generator"]
    assert manifest["plan"]["preset"] == "quick" and manifest["elapsed_s"] > 0
    assert [c["cell"] for c in manifest["plan"]["cells"]] == list(CELLS + LADDER_CELLS)
    for cell_id in CELLS:
        cell = read(results / "cells" / f"{cell_id}.json")
        assert cell["status"] == "ok", cell
        repeat = cell["repeats"][0]
        assert repeat["requests"]["deliver"]["count"] > 0 and repeat["requests"]["deliver"]["p99_ms"] > 0
        # A reference server at a handful of users may spend less than one clock tick (10 ms).
        assert repeat["cpu"]["gateway_s"] >= 0 and repeat["cpu"]["locust_s"] > 0
        if not cell_id.endswith("-reference-u6"):
            assert repeat["cpu"]["gateway_s"] > 0
        assert repeat["proxy"]["totals"]["requests"] > 0 and repeat["derived"]["bytes_per_delivery"] > 0
        assert repeat["reliability"]["lost"] == 0 and repeat["reliability"]["duplicate"] == 0
        assert "load_generator_saturated" in repeat["flags"] and "generator_bound" in repeat["flags"]
        # Distributed: the master and two workers, each one's CPU sampled; the generator's own lag measured.
        assert repeat["generator"]["processes"] == 2 and repeat["generator"]["workers_seen"] == 2
        assert {"locust", "locust-w1", "locust-w2"} <= set(repeat["sampling"]["cpu_pct"])
        assert repeat["requests"]["generator"]["send_lag"]["count"] > 0
        assert repeat["derived"]["generator_lag_p99_ms"] is not None
        assert cell["summary"]["deliver_p99_ms"]["median"] == repeat["requests"]["deliver"]["p99_ms"]
        for name in ("json", "stats_csv", "failures_csv"):
            assert (results / repeat["files"][name]).exists(), name
    # The calibration cell ran the same users against the raw SSE reference server, not the gateway.
    reference = read(results / "cells" / "sse-reference-u6.json")
    assert reference["kind"]["server"] == "raw-sse" and "gateway_metrics" not in reference["repeats"][0]
    # The Socket.IO users (over WebSocket, and polling only) against Node's socket.io reference server.
    for cell_id, transport in (("sio-websocket-reference-u6", "websocket"), ("sio-polling-reference-u6", "polling")):
        reference = read(results / "cells" / f"{cell_id}.json")
        assert reference["kind"]["server"] == "node-socketio" and "gateway_metrics" not in reference["repeats"][0]
        classes = reference["repeats"][0]["proxy"]["classes"]
        moved = (classes.get("socketio-websocket") or {}).get("bytes_to_client", 0)
        assert (moved > 0) == (transport == "websocket"), (cell_id, classes)
    polling = read(results / "cells" / "sio-polling-block-u6.json")["repeats"][0]
    # Socket.IO's default client tried to upgrade, the proxy refused, it stayed on polling.
    assert polling["proxy"]["totals"]["upgrades_refused"] > 0 and polling["requests"]["upgrade_websocket"] == 0
    assert polling["proxy"]["classes"]["socketio-websocket"]["bytes_to_client"] == 0


async def test_a_tiny_ladder_joins_first_measures_steady_state_and_says_what_ended_it(report: Path, tmp_path: Path):
    for step, cell_id in enumerate(LADDER_CELLS, 1):
        cell = read(report / "cells" / f"{cell_id}.json")
        assert cell["status"] == "ok", cell
        assert cell["rung"] == {"series": "sse-direct rooms of 10", "step": step, "bound_ms": 5000.0}
        assert cell["uses_proxy"] is False and cell["timing"]["settle"] > 0  # joins first, no proxy in the path
        repeat = cell["repeats"][0]
        assert "--settle" in repeat["locust"]["argv"]
        # The measured window is the steady one: it opened after the joins, so it is shorter than the run.
        assert 0 < repeat["locust"]["window_s"] < cell["timing"]["settle"] + cell["timing"]["duration"]
        assert repeat["requests"]["late_joins"] == 0 and repeat["requests"]["connect"]["count"] == cell["load"]["users"]
        assert repeat["requests"]["deliver"]["count"] > 0 and repeat["reliability"]["lost"] == 0
        assert repeat["sampling"]["cpu_pct"]["gateway"]["mean"] is not None and "proxy" not in repeat["sampling"][
            "cpu_pct"]
    md = (report / "report.md").read_text()
    assert "### Capacity: load ladders (bound: p99 delivery ≤ 5,000 ms, no loss)" in md
    rows = [line for line in md.splitlines() if line.startswith("| sse-direct rooms of 10 |")]
    assert len(rows) == 2 and all(row.endswith("| within the bound |") and "| no proxy |" in row for row in rows)
    texts = {s["id"]: s["text"] for s in read(report / "verdict.json")["sentences"]}
    text = texts["capacity-sse-direct-rooms-of-10"]
    assert text.startswith("SSE + POST, direct (no proxy), rooms of 10: up to 8 users") and "≤ 5,000 ms" in text
    assert "no proxy in the path" in text and "the ladder's last step was still within it" in text

    # The same results against a bound no step can meet: its first step ends the ladder, and the report says why.
    strict = tmp_path / "strict"
    shutil.copytree(report, strict, ignore=shutil.ignore_patterns("locust", "logs", "report.*", "*.png",
                                                                   "verdict.json"))
    for cell_id in LADDER_CELLS:
        path = strict / "cells" / f"{cell_id}.json"
        cell = read(path)
        cell["rung"]["bound_ms"] = 0.5
        path.write_text(json.dumps(cell))
    manifest = read(strict / "manifest.json")
    for header in manifest["plan"]["cells"]:
        if header["rung"] is not None:
            header["rung"]["bound_ms"] = 0.5
    (strict / "manifest.json").write_text(json.dumps(manifest))
    code, out = await comparison("report", str(strict))
    assert code == 0, out
    md = (strict / "report.md").read_text()
    assert "(bound: p99 delivery ≤ 0.5 ms, no loss)" in md
    rows = [line for line in md.splitlines() if line.startswith("| sse-direct rooms of 10 | 1 |")]
    # A p99 over 0.5 ms, or (weighed against so small a bound) the generator's own lag: either ends it.
    why = rows[0].rsplit("|", 2)[1].strip() if rows else None
    assert why in ("p99 delivery passed the bound", "the load generator could not keep up"), rows
    text = {s["id"]: s["text"] for s in read(strict / "verdict.json")["sentences"]}["capacity-sse-direct-rooms-of-10"]
    assert "no step stayed within p99 delivery ≤ 0.5 ms" in text
    assert "its first step (4 users," in text and f"ended the ladder: {why}" in text
    assert ("did not find the gateway's own knee" in text) == (why == "the load generator could not keep up")


async def test_every_number_in_the_verdict_is_traceable(report: Path):
    verdict = read(report / "verdict.json")
    sentences = verdict["sentences"]
    texts = {s["id"]: s["text"] for s in sentences}
    # On a busy machine the generator's lag can flag the cells: then the verdict says so instead.
    compared = any(i.startswith("blocked-latency-") for i in texts)
    assert compared or "generator-bound" in texts.get("blocked-u6", ""), texts
    sourced = 0
    for sentence in sentences:
        values = sentence["values"]
        for name, value in values.items():
            if "source" in value:
                found = walk(read(report / value["source"]["file"]), value["source"]["key"])
                assert math.isclose(found, value["value"], rel_tol=1e-9), (sentence["id"], name, found)
                sourced += 1
            else:
                derived = value["derived"]
                inputs = [values[n]["value"] for n in derived["of"]]
                again = recompute(derived["op"], inputs)
                assert math.isclose(again, value["value"], rel_tol=1e-9), (sentence["id"], name)
        text = sentence["template"].format(**{n: v["display"] for n, v in values.items()})
        assert text == sentence["text"], sentence["id"]
        # No number of the template's own: only p50/p99-style names and cell ids carry digits.
        own = re.sub(r"\{[a-z0-9_]+\}|\bp\d\d\b|\b[a-z-]+-u\d+\b", "", sentence["template"])
        assert not re.search(r"\d", own), (sentence["id"], own)
        # Every value is shown, or is an input of one that is shown.
        needed = set(re.findall(r"\{([a-z0-9_]+)\}", sentence["template"]))
        for name in list(needed):
            needed |= set(values[name].get("derived", {}).get("of", []))
        assert needed == set(values), (sentence["id"], set(values) - needed)
    assert sourced >= (10 if compared else 3)
    ids = [s["id"] for s in sentences]
    # A smoke test says so first, in the verdict and the title, and names no winner.
    assert ids[0] == "smoke-test" and not [i for i in ids if i.startswith(("best-", "rule-"))], ids
    assert {"floor-sse-reference-u6", "floor-sio-websocket-reference-u6", "floor-sio-polling-reference-u6"} <= set(ids)
    for sentence in sentences:  # a smoke test compares nothing: no direction and no ratio between cells
        if sentence["section"] != "capacity":  # a ladder's own reach ("the capacity is higher") compares no cells
            assert not DIRECTION.search(sentence["text"]), (sentence["id"], sentence["text"])
    md = (report / "report.md").read_text()
    assert md.startswith("# rtgateway") and "SMOKE TEST" in md.splitlines()[0]
    for sentence in sentences:
        assert sentence["text"] in md
    for chart in ("latency_by_transport.png", "latency_vs_load.png", "cpu_per_delivery.png", "bytes_per_delivery.png"):
        assert (report / chart).stat().st_size > 1000 and f"]({chart})" in md


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
async def test_html_report_opens_in_chromium_without_errors(report: Path):
    from playwright.async_api import async_playwright

    errors: list[str] = []
    requests: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            await page.goto((report / "report.html").as_uri(), timeout=timeout(10) * 1000)
            images = await page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
            heading = await page.text_content("h1")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            await browser.close()
    assert errors == []
    assert images and all(images), images  # four charts, all decoded from the page itself
    assert all(url.startswith(("file:", "data:")) for url in requests), requests  # works offline
    assert heading and "SSE + POST" in heading


async def test_missing_and_failed_cells_are_reported_as_such(results: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(results, broken,
                    ignore=shutil.ignore_patterns("locust", "logs", "report.*", "*.png", "verdict.json"))
    (broken / "cells" / "sse-block-u6.json").unlink()
    failed = read(broken / "cells" / "sio-polling-block-u6.json")
    failed["status"], failed["error"] = "failed", "the gateway died during the run"
    for repeat in failed["repeats"]:
        repeat["status"], repeat["error"] = "failed", "the gateway died during the run"
    (broken / "cells" / "sio-polling-block-u6.json").write_text(json.dumps(failed))
    code, out = await comparison("report", str(broken))
    assert code == 0, out
    md = (broken / "report.md").read_text()
    html = (broken / "report.html").read_text()
    assert re.search(r"sse-block-u6 \| SSE \+ POST \| block-websocket \| 6 \| missing", md)
    assert re.search(r"<td>sse-block-u6</td>.*?<td[^>]*>missing</td>", html, re.S)
    for document in (md, html):
        assert "failed: the gateway died during the run" in document
    verdict = read(broken / "verdict.json")
    for sentence in verdict["sentences"]:
        for value in sentence["values"].values():
            source = value.get("source", {}).get("file")
            assert source not in ("cells/sse-block-u6.json", "cells/sio-polling-block-u6.json")
    texts = " ".join(s["text"] for s in verdict["sentences"])
    assert "No comparison behind the WebSocket-blocking proxy" in texts
    assert "sse-block-u6 (missing)" in texts and "sio-polling-block-u6 (failed)" in texts


@pytest.mark.parametrize("args, message", [
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "--cells", "sse-nowhere"], "unknown cell(s) sse-nowhere"),
    (["report", "/nonexistent/results"], "is not a folder"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
async def test_bad_command_lines_fail_clearly(args: list[str], message: str):
    code, out = await comparison(*args, within=30)
    assert code == 2, out
    assert message in out, out


async def test_a_port_in_use_is_detected_before_anything_starts(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for option in ("--gateway-port", "--proxy-port"):
            out_dir = tmp_path / option.strip("-")
            code, out = await comparison("run", *TINY, option, str(port), "--out", str(out_dir), within=30)
            assert code == 2, out
            assert f"port {port} on 127.0.0.1 is already in use" in out and option in out, out
            assert not out_dir.exists()  # nothing ran, nothing was written
