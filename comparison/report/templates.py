"""Jinja2 templates of report.html and report.md, kept in Python so an installed package carries them."""

from __future__ import annotations

from typing import Final

METHOD: Final = [
    "Each cell is one transport (one Locust user class) behind one proxy profile at one load. Every repeat starts "
    "a fresh gateway (`python -m gateway`: uvloop + httptools, as the README serves it) and a fresh proxy, warms up with a short run "
    "of the same transport in another namespace, then runs Locust headless for the cell's duration.",
    "\"Direct\" cells go through the proxy's `passthrough` profile (it forwards everything, WebSocket included), so "
    "every cell has the same single proxy hop and its bytes and requests are counted. The proxy's CPU is measured "
    "apart from the gateway's and is not in the gateway's figures.",
    "Delivery latency is measured at each receiver from the time the message was due to be sent (carried in the "
    "message), so a slow publisher cannot hide latency. Percentiles come from Locust's histogram (whole "
    "milliseconds, two significant digits above 100 ms).",
    "Bytes are HTTP bodies and WebSocket message payloads as they crossed the proxy, both ways, from connect to "
    "teardown. HTTP headers, chunked framing and TCP/IP are not counted: that under-counts polling, whose cost in "
    "headers shows in its requests per delivery instead.",
    "The load generator is Locust with gevent-native users (`loadtests/users.py`: plain sockets, no client "
    "library), run distributed (`--processes`: a master and one worker per generator CPU; every number is "
    "aggregated on the master). Where the machine has two or more CPUs, the gateway is pinned to the first and "
    "Locust to the others; the proxy is not pinned (the manifest records the pinning and the processes).",
    "The generator measures its own lag in every repeat: how late its scheduler woke a publish, how late its "
    "event loop woke a timer, and how long a read's deliveries took to be recorded. A repeat whose largest lag "
    "p99 is over the share of its delivery p99 in the manifest, or whose busiest Locust process used more CPU "
    "than the manifest's threshold, is generator-bound, and a cell where most repeats were stays out of the verdict (its "
    "medians are over every repeat: leaving the bound ones out would raise them, a fast repeat being the easiest "
    "for the lag to pass). Calibration cells run the same users against reference servers of tiny "
    "cost (Node's socket.io, a raw SSE server) through the aiohttp proxy's passthrough hop: the floor this generator "
    "can measure at that load on that path (the direct, block-websocket and drop cells' path); the nginx cells take "
    "another path and have no floor here. A repeat where other processes kept the machine busy is flagged too.",
    "A difference names a winner, a direction or a ratio only when it is larger than the repeats' spread (the "
    "winner's worst repeat better than the other's best, with two or more counted repeats each); the quick preset "
    "names none. A cell whose repeats' p99 differ by more than a factor of two is listed under Caveats with each "
    "repeat's figures and what was recorded beside them. The load ladders step one gateway process "
    "up until p99 delivery passes the bound stated in the capacity table, a delivery is lost, the generator cannot "
    "keep up or the proxy saturates; each step measures steady fan-out only (its users spawn and join first, "
    "then publishing starts and the window is measured), and records the gateway's, the proxy's and the "
    "generator's CPU in that window.",
]

HTML: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
 body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0 auto;
        max-width: 1180px; padding: 24px; }
 h1 { font-size: 24px; margin-bottom: 0; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ddd; }
 h3 { font-size: 15px; margin-bottom: 4px; }
 .sub { color: #666; margin-top: 4px; }
 table { border-collapse: collapse; margin: 8px 0 4px; font-size: 12.5px; }
 th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; vertical-align: top; }
 th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; white-space: nowrap; }
 td.text, th.text { text-align: left; } tr.muted td { color: #a33; background: #fff6f6; }
 table.numeric td { white-space: nowrap; } table.numeric td.text { white-space: normal; }
 .spread { color: #777; font-size: 11px; }
 .scroll { overflow-x: auto; }
 .note { color: #666; font-size: 12px; max-width: 1000px; }
 .verdict li { margin: 6px 0; } .warn { color: #a33; }
 img { max-width: 100%; border: 1px solid #eee; margin: 8px 0; }
 code, pre { background: #f6f6f6; border-radius: 3px; font-size: 12.5px; }
 pre { padding: 8px; overflow-x: auto; white-space: pre-wrap; }
</style>
</head>
<body>
{% macro show(table) %}
<h3>{{ table.title }}</h3>
<div class="scroll"><table{% if table.numeric %} class="numeric"{% endif %}>
<tr>{% for c in table.columns %}<th{% if not table.numeric %} class="text"{% endif %}>{{ c }}</th>{% endfor %}</tr>
{% for row in table.rows %}{% set i = loop.index0 %}{% set text = not table.numeric or i in table.muted %}
<tr{% if i in table.muted %} class="muted"{% endif %}>
{%- for v in row %}<td{% if loop.index0 >= 1 and text %} class="text"{% endif %}>{{ v | cell }}</td>{% endfor %}</tr>
{% endfor %}</table></div>
{% if table.note %}<p class="note">{{ table.note }}</p>{% endif %}
{% endmacro %}
<h1>{{ title }}</h1>
<p class="sub">Measured {{ started }} on {{ machine_line }}.
Generated {{ generated }} from <code>{{ folder }}</code>.</p>
{% for problem in problems %}<p class="warn">{{ problem }}</p>{% endfor %}

{% for section, title in sections %}{% if by_section[section] %}
<h2>{{ title }}</h2>
<ul class="verdict">{% for s in by_section[section] %}<li>{{ s.text }}</li>{% endfor %}</ul>
{% endif %}{% if section == "capacity" %}{% for table in tables if table.top %}{{ show(table) }}{% endfor %}
{% endif %}{% if section == "caveats" %}
<h2>Charts</h2>
{% for name, title in charts %}<h3>{{ title }}</h3>
<img alt="{{ title }}" src="data:image/png;base64,{{ images[name] }}">
{% endfor %}
<h2>Numbers</h2>
{% for table in tables if not table.top %}{{ show(table) }}{% endfor %}
{% endif %}{% endfor %}

<h2>Method</h2>
<ul>{% for m in method %}<li>{{ m }}</li>{% endfor %}</ul>
<p class="note">Every number in the sentences above is listed in <code>verdict.json</code> with the results file
and key it was read from, or the values it was computed from.</p>

<h2>Environment</h2>
<table>
{% for k, v in environment %}<tr><th>{{ k }}</th><td class="text">{{ v }}</td></tr>
{% endfor %}</table>
<h3>Gateway settings</h3>
<pre>{{ settings }}</pre>

<h2>Reproduce</h2>
<pre>{{ reproduce }}</pre>
</body>
</html>
"""

MARKDOWN: Final = """{% macro show(table) %}
### {{ table.title }}

| {{ table.columns | join(" | ") }} |
|{% for c in table.columns %}{{ "---:|" if loop.index0 >= 1 and table.numeric else "---|" }}{% endfor %}
{% for row in table.rows %}| {{ row | map("md") | join(" | ") }} |
{% endfor %}{% if table.note %}
{{ table.note }}
{% endif %}{% endmacro %}# {{ title }}

Measured {{ started }} on {{ machine_line }}. Generated {{ generated }} from `{{ folder }}`.
{% for problem in problems %}
**{{ problem }}**
{% endfor %}
{% for section, title in sections %}{% if by_section[section] %}
## {{ title }}

{% for s in by_section[section] %}- {{ s.text }}
{% endfor %}{% endif %}{% if section == "capacity" %}{% for table in tables if table.top %}{{ show(table) }}{% endfor %}
{% endif %}{% if section == "caveats" %}
## Charts
{% for name, title in charts %}
### {{ title }}

![{{ title }}]({{ name }})
{% endfor %}
## Numbers
{% for table in tables if not table.top %}{{ show(table) }}{% endfor %}{% endif %}{% endfor %}
## Method

{% for m in method %}- {{ m }}
{% endfor %}
Every number in the sentences above is listed in `verdict.json` with the results file and key it was read from,
or the values it was computed from.

## Environment

| | |
|---|---|
{% for k, v in environment %}| {{ k }} | {{ v | md }} |
{% endfor %}
Gateway settings:

```json
{{ settings }}
```

## Reproduce

```sh
{{ reproduce }}
```
"""
