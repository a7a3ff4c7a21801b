"""Memory under abuse: peak and settled RSS of one gateway process per attack.

    python -m comparison.memory [--source DIR] [--attack NAME ...] [--settle 10] [--json PATH]

For each attack of issue 12's "Why" list, a fresh gateway process (``python -m gateway``,
the demo app, default settings, memory broker) on 127.0.0.1 and a free port; then, from
this process, the attack, bounded in count and in time:

=================  ===========================================================================
``publish``        150 publishes of ~1 MB into one room (one SSE + POST session)
``emit``           150 ``echo`` emits of ~1 MB with unique ``clientEventId`` s
``auth``           60 Socket.IO connects (WebSocket) with a 900 KB ``auth.name``, then dropped
``slow-readers``   100 SSE readers in a room that stop reading, then 5 publishes of ~1 MB
``sessions``       5,000 SSE sessions opened one after another (50 at a time), each dropped
``streams``        2,000 SSE streams opened at once and held for the hold time
=================  ===========================================================================

RSS (psutil, the gateway process) is sampled every 20 ms: the baseline once the process is
up, the peak during the attack and while its clients stay connected (``--hold`` s), and the
settled value ``--settle`` s after they have gone. What the gateway refuses is reported as
such ("refused: 60/60 connects (validation_failed)"), never as a crash. ``--source`` runs the
gateway from another checkout (its own ``gateway`` package; this process's clients stay):
``docs/memory.md`` compares the tree before issue 12 with the current one. Not a test: the
figures depend on the machine (and on glibc returning freed memory to the system).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import socketio

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
PAD = "x" * 999_000  # a publish body stays under the default maxPayload (1,000,000)
LIMIT = 120.0  # seconds any one attack may take before it is stopped


@dataclass
class Outcome:
    """What the gateway did with an attack's requests."""

    what: str  # "publishes", "connects", ...
    total: int
    done: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)  # no answer, a reset, a timeout

    def refuse(self, code: str) -> None:
        self.refused[code or "unknown"] += 1

    def __str__(self) -> str:
        parts = [f"{self.done}/{self.total} {self.what} accepted"]
        if self.refused:
            codes = ", ".join(f"{code} {n}" for code, n in self.refused.most_common())
            parts.append(f"refused: {sum(self.refused.values())}/{self.total} ({codes})")
        if self.failed:
            parts.append("failed: " + ", ".join(f"{why} {n}" for why, n in self.failed.most_common()))
        return "; ".join(parts)


@dataclass
class Result:
    attack: str
    outcome: str
    baseline_mb: float
    peak_mb: float
    settled_mb: float
    seconds: float
    cut: dict[str, float] = field(default_factory=dict)  # gateway_dropped_total by reason, if exported


# -- the gateway process ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def gateway(source: Path, settings: dict[str, str]) -> AsyncIterator[tuple[str, psutil.Process]]:
    """``python -m gateway`` from ``source`` with default settings (plus ``settings``); stopped after."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(settings, PYTHONPATH=str(source))
    child = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(port), "--log-level", "error"],
        cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=1) as client:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the gateway from {source} did not start")
                await asyncio.sleep(0.05)
        yield url, psutil.Process(child.pid)
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)


class Sampler:
    """The process's RSS every 20 ms, and its peak since started."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def rss(self) -> int:
        value = int(self.process.memory_info().rss)
        self.peak = max(self.peak, value)
        return value

    async def _run(self) -> None:
        while True:
            self.rss()
            await asyncio.sleep(0.02)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# -- clients ----------------------------------------------------------------------------------


def _code(body: bytes) -> str:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return str(json.loads(body).get("code") or "")
    return ""


class RawStream:
    """An SSE stream on a plain socket with small buffers: it reads ``open``, then only what it is asked to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sid = self.key = ""

    @classmethod
    async def open(cls, url: str, outcome: Outcome, *, small: bool = True) -> RawStream | None:
        """Connect and read up to ``open``; None (counted in ``outcome``) if refused or failed."""
        host, port = url.removeprefix("http://").split(":")
        sock = socket.socket()
        if small:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
            reader, writer = await asyncio.open_connection(sock=sock, limit=65536)
        except OSError as exc:
            sock.close()
            outcome.failed[type(exc).__name__] += 1
            return None
        stream = cls(reader, writer)
        try:
            writer.write(b"GET /sse/connect?namespace=/chat HTTP/1.1\r\nHost: bench\r\n\r\n")
            status = await asyncio.wait_for(reader.readline(), 10)
            if b" 200 " not in status:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
                outcome.refuse(_code(body) or status.split(b" ")[1].decode())
                stream.close()
                return None
            while not (line := await asyncio.wait_for(reader.readline(), 10)).startswith(b"data: {"):
                if not line:
                    raise ConnectionResetError("stream ended before open")
            opened = json.loads(line[6:])
            stream.sid, stream.key = opened["sid"], opened.get("key", "")
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
            outcome.failed[type(exc).__name__] += 1
            stream.close()
            return None
        outcome.done += 1
        return stream

    async def drain(self) -> None:
        """Read and discard everything (a reader that keeps up)."""
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while await self.reader.read(1 << 20):
                pass

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.transport.abort()  # gone, as a dropped connection: the session stays resumable


async def post(http: httpx.AsyncClient, url: str, stream: RawStream, op: str, body: dict[str, Any]) -> tuple[int, str]:
    """A request on the session; (status, error code)."""
    response = await http.post(
        f"{url}/sse/sessions/{stream.sid}/{op}", json=body,
        headers={"X-Session-Key": stream.key} if stream.key else {},
    )
    return response.status_code, "" if response.status_code < 300 else _code(response.content)


# -- the attacks ------------------------------------------------------------------------------

Attack = Callable[[str, float], Awaitable[Outcome]]


async def _one_session_floods(
    url: str, hold: float, outcome: Outcome, op: str, bodies: Callable[[], dict[str, Any]], join: str | None = None
) -> Outcome:
    """One SSE + POST session (its stream read and discarded) sends
    requests ``op`` (``outcome.total`` of them) with ``bodies()``, then stays ``hold`` seconds before leaving."""
    setup = Outcome("connects", 1)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        stream = await RawStream.open(url, setup, small=False)
        if stream is None:
            return _setup_failed(outcome, setup)
        drain = asyncio.create_task(stream.drain())
        if join is not None:
            await post(http, url, stream, "join", {"room": join})
        for _ in range(outcome.total):
            status, code = await post(http, url, stream, op, bodies())
            _count(outcome, status, code)
        await asyncio.sleep(hold)
        stream.close()
        drain.cancel()
    return outcome


async def attack_publish(url: str, hold: float, count: int = 150) -> Outcome:
    body = {"room": "flood", "data": PAD}
    return await _one_session_floods(url, hold, Outcome("publishes", count), "publish", lambda: body, join="flood")


async def attack_emit(url: str, hold: float, count: int = 150) -> Outcome:
    def body() -> dict[str, Any]:
        return {"event": "echo", "data": PAD, "clientEventId": uuid.uuid4().hex}

    return await _one_session_floods(url, hold, Outcome("emits", count), "emit", body)


async def attack_auth(url: str, hold: float, count: int = 60) -> Outcome:
    from rtclient.aio import abandon

    outcome = Outcome("connects", count)
    name = "x" * 900_000
    clients: list[socketio.AsyncClient] = []
    for _ in range(count):
        client = socketio.AsyncClient(reconnection=False)
        refusal: list[Any] = []
        client.on("connect_error", lambda data, refusal=refusal: refusal.append(data), namespace="/chat")
        try:
            await client.connect(url, namespaces=["/chat"], transports=["websocket"],
                                 auth={"name": name}, wait_timeout=10)
        except socketio.exceptions.ConnectionError as exc:
            data = refusal[0] if refusal else None
            if isinstance(data, dict) and isinstance(data.get("data"), dict):
                data = data["data"]  # python-socketio hands over {"message", "data": what the server sent}
            if isinstance(data, dict) and data.get("code"):
                outcome.refuse(str(data["code"]))
            else:
                outcome.failed[str(exc)[:40] or "connection error"] += 1
            with contextlib.suppress(Exception):
                await client.disconnect()
            continue
        outcome.done += 1
        clients.append(client)
    await asyncio.sleep(hold)
    for client in clients:  # dropped without a goodbye: each session stays for its recovery window
        with contextlib.suppress(Exception):
            await abandon(client)
            if client.eio.http is not None:
                await client.eio.http.close()
    return outcome


async def attack_slow_readers(url: str, hold: float, readers: int = 100, count: int = 5) -> Outcome:
    outcome = Outcome("publishes", count)
    setup = Outcome("connects", readers + 1)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        opened = await asyncio.gather(*(RawStream.open(url, setup) for _ in range(readers)))
        slow = [s for s in opened if s is not None]
        publisher = await RawStream.open(url, setup, small=False)
        if publisher is None or not slow:
            for s in slow:
                s.close()
            return _setup_failed(outcome, setup)
        drain = asyncio.create_task(publisher.drain())
        for s in slow:
            await post(http, url, s, "join", {"room": "slow"})  # then they never read again
        await post(http, url, publisher, "join", {"room": "slow"})
        for _ in range(count):
            status, code = await post(http, url, publisher, "publish", {"room": "slow", "data": PAD})
            _count(outcome, status, code)
        await asyncio.sleep(hold)
        for s in [*slow, publisher]:
            s.close()
        drain.cancel()
    if setup.refused or setup.failed:
        outcome.failed[f"readers connected {len(slow)}/{readers}"] += 1
    return outcome


async def attack_sessions(url: str, hold: float, count: int = 5000, parallel: int = 50) -> Outcome:
    outcome = Outcome("sessions", count)
    deadline = time.monotonic() + 30
    todo = iter(range(count))

    async def worker() -> None:
        for _ in todo:
            if time.monotonic() > deadline:
                outcome.failed["not tried: 30 s passed"] += 1
                continue
            stream = await RawStream.open(url, outcome, small=False)
            if stream is not None:
                stream.close()

    await asyncio.gather(*(worker() for _ in range(parallel)))
    await asyncio.sleep(hold)
    return outcome


async def attack_streams(url: str, hold: float, count: int = 2000, parallel: int = 100) -> Outcome:
    outcome = Outcome("streams", count)
    held: list[RawStream] = []
    todo = iter(range(count))

    async def worker() -> None:
        for _ in todo:
            stream = await RawStream.open(url, outcome, small=False)
            if stream is not None:
                held.append(stream)

    await asyncio.gather(*(worker() for _ in range(parallel)))
    await asyncio.sleep(hold)
    for stream in held:
        stream.close()
    return outcome


def _count(outcome: Outcome, status: int, code: str) -> None:
    if status < 300:
        outcome.done += 1
    else:
        outcome.refuse(code or str(status))


def _setup_failed(outcome: Outcome, setup: Outcome) -> Outcome:
    for code, n in setup.refused.items():
        outcome.refused[f"connect {code}"] += n
    for why, n in setup.failed.items():
        outcome.failed[f"connect {why}"] += n
    return outcome


ATTACKS: dict[str, tuple[str, Attack]] = {
    "publish": ("150 publishes of 1 MB, one room", attack_publish),
    "emit": ("150 emits of 1 MB, unique clientEventIds", attack_emit),
    "auth": ("60 Socket.IO connects, 900 KB auth.name", attack_auth),
    "slow-readers": ("100 SSE readers stop reading, 5 publishes of 1 MB", attack_slow_readers),
    "sessions": ("5,000 SSE sessions, 50 at a time, dropped", attack_sessions),
    "streams": ("2,000 SSE streams held at once", attack_streams),
}


# -- running ----------------------------------------------------------------------------------


async def _dropped(url: str) -> dict[str, float]:
    """``gateway_dropped_total`` by reason, from ``/metrics``."""
    cut: dict[str, float] = {}
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
            text = (await http.get(f"{url}/metrics")).text
        for line in text.splitlines():
            if line.startswith("gateway_dropped_total{"):
                reason = line.split('reason="', 1)[1].split('"', 1)[0]
                cut[reason] = float(line.rsplit(" ", 1)[1])
    return cut


async def run_attack(name: str, source: Path, settings: dict[str, str], hold: float, settle: float) -> Result:
    _, attack = ATTACKS[name]
    async with gateway(source, settings) as (url, process):
        await asyncio.sleep(1.0)  # imports and start-up allocations done
        sampler = Sampler(process)
        baseline = sampler.rss()
        sampler.peak = baseline
        sampler.start()
        started = time.monotonic()
        try:
            async with asyncio.timeout(LIMIT):
                outcome = str(await attack(url, hold))
        except TimeoutError:
            outcome = f"stopped after {LIMIT:.0f} s"
        elapsed = time.monotonic() - started
        await asyncio.sleep(settle)
        settled = sampler.rss()
        await sampler.stop()
        cut = await _dropped(url)
    return Result(name, outcome, baseline / MB, sampler.peak / MB, settled / MB, elapsed, cut)


def table(results: list[Result]) -> str:
    lines = [
        "| attack | outcome | baseline | peak | settled | time |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        what = ATTACKS[r.attack][0]
        cut = "".join(f"; cut: {n:.0f} {reason}" for reason, n in r.cut.items() if n)
        lines.append(
            f"| `{r.attack}`: {what} | {r.outcome}{cut} | {r.baseline_mb:.0f} MiB | "
            f"{r.peak_mb:.0f} MiB (+{r.peak_mb - r.baseline_mb:.0f}) | "
            f"{r.settled_mb:.0f} MiB (+{r.settled_mb - r.baseline_mb:.0f}) | {r.seconds:.1f} s |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[Result]:
    settings = dict(item.split("=", 1) for item in args.set)
    results = []
    for name in args.attack or list(ATTACKS):
        print(f"{name}: {ATTACKS[name][0]} ...", file=sys.stderr, flush=True)
        result = await run_attack(name, args.source.resolve(), settings, args.hold, args.settle)
        print(f"  {result.outcome}; peak +{result.peak_mb - result.baseline_mb:.0f} MiB, "
              f"settled +{result.settled_mb - result.baseline_mb:.0f} MiB", file=sys.stderr, flush=True)
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m comparison.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT,
                        help="checkout whose gateway package is run (default: this one)")
    parser.add_argument("--attack", action="append", choices=list(ATTACKS), help="run only these (repeatable)")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds the attack's clients stay connected (2)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds after they have gone before the settled RSS is read (10)")
    parser.add_argument("--set", action="append", default=[], metavar="GATEWAY_NAME=VALUE",
                        help="a setting for the gateway (default: none, the defaults)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(f"gateway from {args.source.resolve()}; Python {sys.version.split()[0]}, {psutil.cpu_count()} CPUs; "
          f"hold {args.hold:g} s, settle {args.settle:g} s\n")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")


if __name__ == "__main__":
    main()
