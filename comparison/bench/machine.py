"""What the figures were measured on: CPU, memory, versions of everything under test."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

import psutil

from ..manifest import cpu_model
from .servers import ROOT

PYTHON_PACKAGES = (
    "uvicorn", "uvloop", "httptools", "websockets", "wsproto", "python-socketio", "python-engineio",
    "fastapi", "starlette", "pydantic", "orjson", "psutil",
)
NODE_PACKAGES = ("socket.io", "engine.io", "ws", "socket.io-adapter", "socket.io-parser")


def _run(*argv: str) -> str | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _node_packages() -> dict[str, str]:
    found = {}
    for name in NODE_PACKAGES:
        manifest = ROOT / "node_modules" / name / "package.json"
        if manifest.is_file():
            found[name] = json.loads(manifest.read_text()).get("version", "?")
    return found


def _python_packages() -> dict[str, str]:
    versions = {}
    for name in PYTHON_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def machine_info() -> dict[str, Any]:
    memory = psutil.virtual_memory()
    freq = psutil.cpu_freq()
    return {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "cpu_mhz": round(freq.current) if freq else None,
        "memory_bytes": memory.total,
        "os": platform.platform(),
        "virtualization": _run("systemd-detect-virt"),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "python_packages": _python_packages(),
        "node": _run("node", "--version"),
        "node_packages": _node_packages(),
        "git": {
            "commit": _run("git", "rev-parse", "HEAD"),
            "branch": _run("git", "rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(_run("git", "status", "--porcelain", "--untracked-files=no")),
        },
    }


def describe(machine: dict[str, Any]) -> str:
    """One line for the report."""
    py = machine["python_packages"]
    node = machine.get("node") or "no node"
    sio = machine["node_packages"].get("socket.io")
    return (
        f"{machine['cpu_model']}, {machine['cpus']} CPUs, {machine['memory_bytes'] / 2**30:.1f} GiB, "
        f"{machine['os']}; Python {machine['python']} (uvicorn {py.get('uvicorn')}, uvloop {py.get('uvloop')}, "
        f"python-socketio {py.get('python-socketio')}, websockets {py.get('websockets')}); "
        f"Node {node}" + (f" (socket.io {sio})" if sio else "")
    )
