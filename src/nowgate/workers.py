"""`nowgate serve --workers N`: N gateway processes of one machine on one port, one cluster.

The parent binds the port once and forks N workers that accept from that one listening
socket (the kernel hands each new connection to one of them); each worker is a whole
gateway (its own event loop, hub and Redis connections) and the workers form a cluster
through `NOWGATE_REDIS_URL`, which is therefore required. The parent only supervises: it
passes SIGTERM/SIGINT on to every worker (each drains gracefully: 1001 to its clients, who
resume on the others or after the restart) and waits for them; a worker that dies on its
own is started again after `RESTART_DELAY` seconds. With a metrics port, worker i serves
its metrics on that port + i.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

from .settings import Settings

log = logging.getLogger("nowgate.workers")

RESTART_DELAY = 1.0
REQUIRES_REDIS = (
    "nowgate: --workers {count} needs NOWGATE_REDIS_URL (the workers form a cluster through "
    "Redis); set it, or run one process without --workers"
)


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_workers(
    count: int,
    settings: Settings,
    host: str,
    port: int,
    serve_worker: Callable[[Settings, socket.socket], None],
) -> int:
    """Fork `count` workers running `serve_worker(settings, sock)`; return when all ended."""
    sock = listening_socket(host, port)
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False

    def spawn(index: int) -> None:
        worker_settings = settings
        if settings.metrics_port is not None:
            worker_settings = settings.model_copy(
                update={"metrics_port": settings.metrics_port + index})
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                serve_worker(worker_settings, sock)
            except BaseException:
                log.exception("worker %d failed", index)
                code = 1
            finally:
                os._exit(code)
        children[pid] = index
        log.info("worker %d started (pid %d)", index, pid)

    def forward(sig: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    log.info("%d workers on http://%s:%d (one cluster through Redis)", count, host, port)
    for index in range(count):
        spawn(index)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in children:
            continue
        index = children.pop(pid)
        if not stopping:
            log.error("worker %d (pid %d) ended unexpectedly (status %d); restarting it",
                      index, pid, status)
            time.sleep(RESTART_DELAY)
            if not stopping:
                spawn(index)
    sock.close()
    return 0
