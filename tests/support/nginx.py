"""A real nginx for tests, running deploy/nginx.conf itself in front of a test gateway.

`render_config()` takes the production file, drops its comments and replaces only what cannot
work in a test: the user, pid/log paths, certificate paths, the ACME webroot, listen ports
(IPv6 ones removed), the upstream server (one, or several for a cluster) and the placeholder
host name; it adds `daemon off;`
and temp paths under the test's directory. Every
proxy directive (headers, upgrade, timeouts, limits, TLS settings) is the deployed one, and
each replacement must match, so the test fails loudly if the file drifts from what it expects.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.support.gateway import REPO, free_port, terminate

DEPLOY_CONFIG = REPO / "deploy" / "nginx.conf"
PLACEHOLDER_HOST = "gateway.example.com"
UPSTREAM_PLACEHOLDER = "server 127.0.0.1:8000;"


def nginx_binary() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        raise RuntimeError(
            "nginx is not installed: apt-get install -y --no-install-recommends nginx "
            "(scripts/test does this)"
        )
    return found


@dataclass(frozen=True)
class Certificate:
    ca: Path  # the test CA clients trust
    chain: Path  # the server certificate (signed by the CA), for ssl_certificate
    key: Path


def make_certificate(directory: Path, host: str = "127.0.0.1") -> Certificate:
    """A throwaway CA and a server certificate for `host` (IP SAN), with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, csr, chain = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "server.ext"
    extensions.write_text(
        f"subjectAltName=IP:{host}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n",
        encoding="ascii",
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=nowgate test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={host}"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
         "-set_serial", "2", "-days", "2", "-extfile", extensions, "-out", chain],
    ]  # fmt: skip
    for command in commands:
        subprocess.run(command, check=True, capture_output=True, timeout=30)
    return Certificate(ca=ca, chain=chain, key=key)


def _replace(pattern: str, replacement: str, text: str, what: str) -> str:
    result, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count == 0:
        raise AssertionError(f"deploy/nginx.conf no longer has {what} ({pattern!r})")
    return result


def render_config(
    source: str,
    directory: Path,
    *,
    upstream_port: int | Sequence[int],
    http_port: int,
    https_port: int,
    certificate: Certificate,
    host: str = "127.0.0.1",
) -> str:
    """deploy/nginx.conf with test ports, paths and host; every proxy directive unchanged."""
    # Comments go first: they mention the placeholders and system paths too.
    text = re.sub(r"[ \t]*#.*$", "", source, flags=re.MULTILINE)
    text = re.sub(r"\n{2,}", "\n", text).lstrip("\n")
    for name, value in (
        ("user", "root"),  # workers must enter pytest's 0700 temp dirs
        ("pid", str(directory / "nginx.pid")),
        ("error_log", f"{directory / 'error.log'} info"),
        ("access_log", str(directory / "access.log")),
        ("ssl_certificate", str(certificate.chain)),
        ("ssl_certificate_key", str(certificate.key)),
        ("root", str(directory / "acme")),
    ):
        # A whole directive; \s+ after the name keeps ssl_certificate off ssl_certificate_key.
        text = _replace(rf"^(\s*){name}\s+[^;]*;", rf"\g<1>{name} {value};", text, name)
    ports = [upstream_port] if isinstance(upstream_port, int) else list(upstream_port)
    servers = " ".join(f"server 127.0.0.1:{port};" for port in ports)
    text = _replace(re.escape(UPSTREAM_PLACEHOLDER), servers, text, "the upstream server")
    text = _replace(rf"\b{re.escape(PLACEHOLDER_HOST)}\b", host, text, "the placeholder host")
    text = _replace(r"^\s*listen \[::\]:\d+[^;]*;\n", "", text, "IPv6 listens")
    text = _replace(r"^(\s*)listen 80\b", rf"\g<1>listen 127.0.0.1:{http_port}", text, "port 80")
    text = _replace(r"^(\s*)listen 443\b", rf"\g<1>listen 127.0.0.1:{https_port}", text, "443")
    temp_paths = "".join(
        f"    {kind}_temp_path {directory / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = _replace(r"^http \{\n", "http {\n" + temp_paths, text, "an http block")
    text = "daemon off;\n" + text

    listens = re.findall(r"^\s*listen\s+([^;]*);", text, flags=re.MULTILINE)
    stray = [listen for listen in listens if not listen.startswith("127.0.0.1:")]
    if stray:
        raise AssertionError(f"unexpected listen directives in deploy/nginx.conf: {stray}")
    outside = re.findall(r"(?<![\w.])/(?:etc|var|run|usr)/\S*", text)
    if outside:
        raise AssertionError(f"the test config would touch system paths: {outside}")
    return text


def _wait_for_port(port: int, process: subprocess.Popen[bytes], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class Nginx:
    """deploy/nginx.conf in front of the gateway on `upstream_port` (or the cluster of
    gateways on those ports), on two loopback ports."""

    def __init__(self, upstream_port: int | Sequence[int], config: str | None = None) -> None:
        self.upstream_port = upstream_port
        self.source = DEPLOY_CONFIG.read_text(encoding="utf-8") if config is None else config
        self.http_port = free_port()
        self.https_port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="nowgate-nginx-"))
        try:
            self.certificate = make_certificate(self.directory / "tls")
            self.config_path = self.directory / "nginx.conf"
            self.config_path.write_text(
                render_config(
                    self.source,
                    self.directory,
                    upstream_port=upstream_port,
                    http_port=self.http_port,
                    https_port=self.https_port,
                    certificate=self.certificate,
                ),
                encoding="utf-8",
            )
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def acme_root(self) -> Path:
        """The ACME webroot (`root` of /.well-known/acme-challenge/ in deploy/nginx.conf)."""
        return self.directory / "acme"

    @property
    def origin(self) -> str:
        """The site's origin as a browser on it would send it."""
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def https_url(self) -> str:
        return self.origin

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def wss_url(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}/ws"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the test CA only (hostname checked as usual)."""
        return ssl.create_default_context(cafile=str(self.certificate.ca))

    @property
    def log(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.directory / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(encoding="utf-8", errors="replace"))
        return "\n".join(parts)

    def start(self, timeout: float = 10.0) -> Nginx:
        with (self.directory / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(
                [nginx_binary(), "-e", "stderr", "-p", str(self.directory),
                 "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        for port in (self.http_port, self.https_port):
            if not _wait_for_port(port, self.process, deadline):
                self.stop()
                raise RuntimeError(f"nginx did not start:\n{self.log}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        # SIGTERM: fast shutdown (SIGQUIT would wait for open WebSockets).
        terminate(process, signal.SIGTERM, timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # a worker the master left behind

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Stop nginx and remove its directory (config, certificate, logs)."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
