"""The load test's options reach Locust's web UI form.

In a child process: importing Locust monkey-patches the interpreter with gevent, which the
test process (asyncio) must not be.
"""

from __future__ import annotations

import json
import subprocess
import sys

from .servers import ROOT

PROBE = """
import json
from locust.argument_parser import get_parser
import loadtests.users  # registers the options, as ``locust -f loadtests`` does
print(json.dumps(sorted(get_parser().args_included_in_web_ui)))
"""


def test_the_custom_options_are_in_the_web_ui_form() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    in_form = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {"transport_mix", "room_size", "publish_rate", "payload_bytes", "target", "proxy_url"} <= in_form


FENCE_PROBE = """
import inspect
from locust import argument_parser, runners
import loadtests.users  # installs the fence, as ``locust -f loadtests`` does
from loadtests import _locust_fence

assert "argument_parser.default_args_dict()" in inspect.getsource(runners.WorkerRunner.handle_message)
assert argument_parser.default_args_dict is _locust_fence.default_args_dict
fresh = _locust_fence._compute()
assert isinstance(fresh, dict) and "host" in fresh and "num_users" in fresh, sorted(fresh)[:20]
first = argument_parser.default_args_dict()
assert first == fresh
first["host"] = "changed by a caller"
assert argument_parser.default_args_dict() == fresh  # each call gets its own copy
print("fits")
"""


def test_the_locust_fence_still_fits_locust() -> None:
    """``loadtests/_locust_fence.py`` caches what a worker recomputes per option of every spawn
    message; if Locust stops calling it there, or changes what it returns, the fence is stale."""
    done = subprocess.run([sys.executable, "-c", FENCE_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip().endswith("fits"), done.stderr[-2000:]
