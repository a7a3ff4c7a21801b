"""nginx configurations for the comparison, rendered for a test or a run.

``render(listen_port, upstream_port, workdir)`` fills the placeholders of
``block-websocket.conf`` and writes the result into ``workdir``, where nginx also keeps
its pid, logs and temp files, so it runs from a test without root paths::

    nginx -p WORKDIR -c CONF -g 'daemon off;'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).parent
NGINX: Final = Path("/usr/sbin/nginx")


def render(
    listen_port: int,
    upstream_port: int | Sequence[int],
    workdir: Path | str,
    name: str = "block-websocket",
) -> Path:
    """Write ``<name>.conf`` for these ports into ``workdir``; return its path.

    ``upstream_port`` is one gateway's port, or several nodes' ports (``multi-node``).
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    ports = [upstream_port] if isinstance(upstream_port, int) else list(upstream_port)
    template = (HERE / f"{name}.conf").read_text()
    text = (
        template.replace("{{LISTEN_PORT}}", str(int(listen_port)))
        .replace("{{UPSTREAM_PORT}}", str(int(ports[0])))
        .replace("{{UPSTREAM_SERVERS}}", " ".join(f"server 127.0.0.1:{int(p)};" for p in ports))
        .replace("{{WORKDIR}}", str(workdir))
    )
    conf = workdir / f"{name}.conf"
    conf.write_text(text)
    return conf


def command(conf: Path, nginx: Path = NGINX) -> list[str]:
    """The foreground nginx command line for a rendered configuration."""
    return [str(nginx), "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"]
