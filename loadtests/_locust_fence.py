"""The one place the load tests reach into Locust's internals (tests/test_loadtest_options.py
fails if Locust changes under it).

A worker handles each ``spawn`` message from the master (several a second while users ramp
up) with ``{k: v for k, v in options if k not in argument_parser.default_args_dict()}``: it
builds and parses Locust's whole default command line once per option, about a hundred times,
holding the event loop 20-40 ms each time. The load generator measured that as its own lag (send
lag p99 23-45 ms at 100 users against any server, at 15-25% of a core; found with gevent's
monitor thread, ``GEVENT_MONITOR_THREAD_ENABLE=1``). The defaults never change within a process:
computed once here, a fresh copy per call as before.
"""

from __future__ import annotations

import functools
from typing import Any

from locust import argument_parser

_compute = argument_parser.default_args_dict


@functools.cache
def _defaults() -> dict[str, Any]:
    return dict(_compute())


def default_args_dict() -> dict[str, Any]:
    """Locust's default arguments, as ``argument_parser.default_args_dict`` returns them."""
    return dict(_defaults())


def install() -> None:
    argument_parser.default_args_dict = default_args_dict
