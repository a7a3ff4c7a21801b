"""nginx configurations for the comparison, rendered for a test or a run.

``render(listen_port, upstream_port, workdir)`` fills the placeholders of
``block-websocket.conf`` and writes the result into ``workdir``, where nginx also keeps
its pid, logs and temp files, so it runs from a test without root paths::

    nginx -p WORKDIR -c CONF -g 'daemon off;'
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import psutil

HERE: Final = Path(__file__).parent
NGINX: Final = Path("/usr/sbin/nginx")
# The HTTP/2 + TLS front a deployment uses for many tabs without WebSocket (README, "Serving over HTTP/2").
HTTP2_TLS: Final = HERE.parents[1] / "deploy" / "nginx" / "http2-tls.conf"


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


def self_signed(workdir: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate (one day, for IP ``host``) and its key, made with openssl in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=IP:{host}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def render_http2_tls(listen_port: int, upstream_port: int, workdir: Path | str, listen_address: str = "127.0.0.1") -> Path:
    """deploy/nginx/http2-tls.conf filled for these ports, with a self-signed certificate for
    ``listen_address`` made in ``workdir``; return the configuration's path there."""
    workdir = Path(workdir).resolve()
    cert, key = self_signed(workdir, listen_address)
    text = (
        HTTP2_TLS.read_text().replace("{{LISTEN_ADDRESS}}", listen_address)
        .replace("{{LISTEN_PORT}}", str(int(listen_port))).replace("{{UPSTREAM_PORT}}", str(int(upstream_port)))
        .replace("{{WORKDIR}}", str(workdir)).replace("{{CERT}}", str(cert)).replace("{{KEY}}", str(key))
    )
    conf = workdir / HTTP2_TLS.name
    conf.write_text(text)
    return conf


def command(conf: Path, nginx: Path = NGINX) -> list[str]:
    """The foreground nginx command line for a rendered configuration."""
    return [str(nginx), "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"]


class NginxStartError(RuntimeError):
    """nginx exited or did not listen in time; ``str()`` ends with its error log's tail."""


class NginxProcess:
    """nginx in the foreground with a rendered configuration, in its own session, stopped by pid.

    ``url`` is where clients connect; ``pid`` is its worker's (where the CPU goes: the master
    only supervises), or the master's if the worker is not found.
    """

    def __init__(self, upstream_url: str, workdir: Path, name: str = "block-websocket") -> None:
        self.upstream_port = int(upstream_url.rsplit(":", 1)[1])
        self.workdir = workdir
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.url = ""

    def start(self, within: float = 10.0) -> NginxProcess:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        conf = render(self.port, self.upstream_port, self.workdir, self.name)
        self.process = subprocess.Popen(command(conf), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + within
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.workdir / "error.log"
                self.stop()
                raise NginxStartError(f"nginx did not start: {log.read_text()[-1500:] if log.exists() else ''}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.process is not None
        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.Error:
            children = []
        return children[0].pid if children else self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
