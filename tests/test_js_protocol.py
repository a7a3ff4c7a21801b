"""The JavaScript client's pure pieces (gateway/static/rtgateway-protocol.js) under node --test."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

from .servers import timeout

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.node
if shutil.which("node") is None:
    pytestmark = [pytest.mark.node, pytest.mark.skip(reason="needs node (make system-deps installs it)")]


def test_protocol_module(tmp_path: pathlib.Path) -> None:
    # Copied as .mjs: the repository's package.json does not say "type": "module".
    module = tmp_path / "rtgateway-protocol.mjs"
    shutil.copy(ROOT / "gateway" / "static" / "rtgateway-protocol.js", module)
    run = subprocess.run(
        ["node", "--test", str(ROOT / "tests" / "js" / "protocol.test.mjs")],
        env={**os.environ, "RTGW_PROTOCOL": str(module)}, capture_output=True, text=True, timeout=timeout(60),
        check=False,  # the assertion below shows node's report
    )
    assert run.returncode == 0, run.stdout + run.stderr
