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
