"""``manifest.json``: the machine, the software, the gateway's settings and the exact command."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import psutil

from .children import GATEWAY_OPTIONS, ROOT
from .records import BUSY_CORES, GENERATOR_CPU_PCT, GENERATOR_LAG_SHARE, SATURATED_PCT

PACKAGES: Final = (
    "fastapi", "starlette", "pydantic", "python-socketio", "python-engineio", "uvicorn",
    "uvloop", "httptools", "websockets", "orjson", "locust", "gevent", "httpx", "websocket-client",
    "requests", "aiohttp", "psutil", "matplotlib", "jinja2",
)
SECRET_SETTINGS: Final = ("admin_token", "api_token", "jwt_secret")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    freq = psutil.cpu_freq()
    return {
        "cpu_model": cpu_model(),
        "cores_logical": psutil.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cpu_mhz": round(freq.current) if freq else None,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(),
                                  "python_implementation": platform.python_implementation()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def gateway_settings(env: dict[str, str]) -> dict[str, Any]:
    """The settings the gateway child reads from ``env`` (the same ``GATEWAY_*`` variables); tokens redacted."""
    from gateway.settings import Settings

    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        settings = Settings().model_dump(mode="json")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for name in SECRET_SETTINGS:
        if settings.get(name):
            settings[name] = "<redacted>"
    return settings


def git_revision() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    # Untracked files count: code not yet committed may be what ran.
    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(status) if status is not None else None}


def command_line(argv: list[str]) -> str:
    return shlex.join(["python", "-m", "comparison", *argv])


def build(argv: list[str], env: dict[str, str], plan: dict[str, Any], generator: dict[str, Any]) -> dict[str, Any]:
    """``generator``: how the load generator runs (its processes, the CPU pinning)."""
    return {
        "schema": 1,
        "command": command_line(argv),
        "argv": argv,
        "python_executable": sys.executable,
        "cwd": str(ROOT),
        "started_at": now_iso(),
        "ended_at": None,
        "completed": False,
        "interrupted": False,
        "machine": machine(),
        "versions": versions(),
        "git": git_revision(),
        "gateway": {"command": "python -m gateway --host 127.0.0.1 --port PORT " + " ".join(GATEWAY_OPTIONS),
                    "settings": gateway_settings(env)},
        "load_generator": {"users": "loadtests/users.py (gevent sockets, Locust --processes)", **generator},
        "thresholds": {"load_generator_saturated_pct": SATURATED_PCT, "busy_machine_cores": BUSY_CORES,
                       "generator_lag_share": GENERATOR_LAG_SHARE, "generator_cpu_pct": GENERATOR_CPU_PCT},
        "plan": plan,
    }
