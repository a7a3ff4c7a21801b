"""A reverse proxy for the comparison, with profiles that behave like the proxies clients meet.

    python -m comparison.proxy --profile block-websocket --listen 127.0.0.1:8080 --upstream http://127.0.0.1:8000

Modules: ``classify`` (which transport a request is), ``profiles`` (one class per
behaviour), ``connections`` (per-connection cutoffs), ``relay`` (streaming HTTP and
WebSocket forwarding), ``stats`` (counters and their HTTP reader), ``server`` (``Proxy``,
in-process), ``launch`` (``ProxyProcess``: the command line as a child process, awaited ready).
"""

from __future__ import annotations

from .classify import TRANSPORT_CLASSES, TransportClass, classify
from .launch import ProxyProcess, ProxyStartError
from .profiles import PROFILES, Profile, ProfileOptions, make_profile
from .server import Proxy
from .stats import Counters, StatsSnapshot, read_stats, reset_stats

__all__ = [
    "PROFILES",
    "TRANSPORT_CLASSES",
    "Counters",
    "Profile",
    "ProfileOptions",
    "Proxy",
    "ProxyProcess",
    "ProxyStartError",
    "StatsSnapshot",
    "TransportClass",
    "classify",
    "make_profile",
    "read_stats",
    "reset_stats",
]
