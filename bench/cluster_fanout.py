#!/usr/bin/env python3
"""Cross-node fan-out: deliveries/s with N subscribers on 1, 2 and 3 gateway processes.

    .venv/bin/python bench/cluster_fanout.py                  # N=600, 3 rounds, ~2 minutes
    .venv/bin/python bench/cluster_fanout.py --n 900 --rounds 5

Every configuration is a cluster on one fresh redis-server (`NOWGATE_REDIS_URL` set even
for one process, so every run takes the same code path: local delivery plus the backplane
publish). The N subscribers are split evenly over the P processes; one publisher on the
first process calls `relay` (bench/cluster.toml: the demo's syncPosition relay without its
lease, so no Redis round trip per call) in a closed loop: it keeps at most `--inflight`
calls' worth of deliveries outstanding (it sends again once the subscribers together have
received all but that many calls' deliveries), so the loop runs as fast as the cluster
delivers. deliveries/s counts every `updatePosition` received, per window; each
configuration reports the median of `--windows` windows. Rounds interleave the
configurations (1, 2, 3, 1, 2, 3, ...) so that the machine's noise falls on all of them,
and each round's P=2 and P=3 figures are divided by that same round's P=1. The CPU the
load generator and the gateways used during the windows is reported with each run.

The load generator is this one Python process (websockets, uvloop when installed); with
gateways, Redis and it on few cores, it is part of what is measured. Standard library plus
the project's .venv only; nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "bench" / "cluster.toml"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"a server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("a server did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nowgate-bench-redis-") as directory:
        process = subprocess.Popen(
            [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", directory, "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_port(port, process)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop(process)


@contextlib.contextmanager
def gateways(count: int, redis_url: str, logs: Path) -> Iterator[tuple[list[str], list[int]]]:
    key = secrets.token_urlsafe(32)
    ports = [free_port() for _ in range(count)]
    processes = []
    env = {**os.environ, "NOWGATE_REDIS_URL": redis_url, "NOWGATE_SECRET_KEYS": key,
           "NOWGATE_CONNECT_RATE_PER_ADDRESS": "100000/minute",
           "NOWGATE_CONNECTION_RATE": "100000/second", "PYTHONUNBUFFERED": "1"}
    try:
        for index, port in enumerate(ports):
            log = (logs / f"p{count}-node{index}.log").open("wb")
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "nowgate", "serve", "--policy", str(POLICY),
                 "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))
            log.close()
        for port, process in zip(ports, processes, strict=True):
            wait_port(port, process)
        yield [f"ws://127.0.0.1:{port}/ws" for port in ports], [p.pid for p in processes]
    finally:
        for process in processes:
            stop(process)


async def open_client(url: str) -> ClientConnection:
    connection = await connect(url, max_size=None, open_timeout=30)
    await connection.send(json.dumps(
        {"jsonrpc": "2.0", "id": 0, "method": "now.hello", "params": {"protocol": 1}}))
    await connection.recv()  # the welcome
    return connection


class Counter:
    def __init__(self) -> None:
        self.delivered = 0


async def subscribe(connection: ClientConnection, counter: Counter) -> None:
    with contextlib.suppress(Exception):
        async for frame in connection:
            if isinstance(frame, str) and '"updatePosition"' in frame:
                counter.delivered += 1


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/PID/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(urls: list[str], pids: list[int], n: int, inflight: int, windows: int,
                  window: float) -> tuple[list[float], float, float]:
    """Deliveries/s per window; the load generator's and the servers' CPU share (cores)."""
    counter = Counter()
    subscribers: list[ClientConnection] = []
    for start in range(0, n, 64):  # 64 handshakes in flight
        batch = [urls[i % len(urls)] for i in range(start, min(start + 64, n))]
        subscribers += await asyncio.gather(*(open_client(url) for url in batch))
    readers = [asyncio.create_task(subscribe(c, counter)) for c in subscribers]
    publisher = await open_client(urls[0])
    await asyncio.sleep(1.0)  # presence heartbeats and subscriptions settle
    sent = 0
    give_up = time.monotonic() + 10.0 + 2 * windows * window
    samples: list[float] = []

    async def drain_answers() -> None:
        with contextlib.suppress(Exception):
            async for _ in publisher:
                pass

    answers = asyncio.create_task(drain_answers())
    window_start, window_count = time.monotonic() + 1.0, None  # 1 s warm-up
    cpu_start: tuple[float, float, float] | None = None
    while len(samples) < windows and time.monotonic() < give_up:
        if (sent - inflight) * n <= counter.delivered:
            sent += 1
            await publisher.send(json.dumps({
                "jsonrpc": "2.0", "id": sent, "method": "relay",
                "params": [{"left": sent % 10000, "top": sent // 10000}]}))
        else:
            await asyncio.sleep(0.0005)
        now = time.monotonic()
        if window_count is None and now >= window_start:
            window_start, window_count = now, counter.delivered
            cpu_start = (now, time.process_time(), sum(cpu_seconds(pid) for pid in pids))
        elif window_count is not None and now - window_start >= window:
            samples.append((counter.delivered - window_count) / (now - window_start))
            window_start, window_count = now, counter.delivered
    for task in (*readers, answers):
        task.cancel()
    await asyncio.gather(*readers, answers, return_exceptions=True)
    await asyncio.gather(*(c.close() for c in (*subscribers, publisher)),
                         return_exceptions=True)
    if len(samples) < windows or cpu_start is None:
        raise RuntimeError(f"stalled: {counter.delivered} deliveries for {sent} calls")
    wall = time.monotonic() - cpu_start[0]
    loadgen = (time.process_time() - cpu_start[1]) / wall
    servers = (sum(cpu_seconds(pid) for pid in pids) - cpu_start[2]) / wall
    return samples, loadgen, servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=600, help="subscribers in total")
    parser.add_argument("--processes", default="1,2,3")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cluster.json")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C: every gateway and redis-server started here is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    counts = [int(p) for p in args.processes.split(",")]
    runs: list[dict[str, object]] = []
    median_of: dict[tuple[int, int], float] = {}  # (round, processes) -> deliveries/s
    with tempfile.TemporaryDirectory(prefix="nowgate-bench-logs-") as logs:
        for round_index in range(args.rounds):
            for count in counts:
                with (
                    redis_server() as redis_url,
                    gateways(count, redis_url, Path(logs)) as (urls, pids),
                ):
                    samples, loadgen, servers = asyncio.run(measure(
                        urls, pids, args.n, args.inflight, args.windows, args.window))
                median = statistics.median(samples)
                median_of[(round_index, count)] = median
                runs.append({"round": round_index, "processes": count, "n": args.n,
                             "windows": samples, "median": median,
                             "loadgen_cpu": loadgen, "servers_cpu": servers})
                print(f"round {round_index} P={count} N={args.n}: {median:,.0f} deliveries/s "
                      f"(windows {', '.join(f'{s:,.0f}' for s in samples)}; load generator "
                      f"{loadgen:.0%} of a core, gateways {servers:.0%})", flush=True)
    print("\n| processes | N | deliveries/s, median of rounds | per-round ratio to P=1 |")
    print("|---:|---:|---:|---|")
    for count in counts:
        rounds = range(args.rounds)
        medians = [median_of[(r, count)] for r in rounds]
        ratios = [median_of[(r, count)] / median_of[(r, counts[0])] for r in rounds]
        print(f"| {count} | {args.n} | {statistics.median(medians):,.0f} "
              f"| {', '.join(f'{x:.2f}' for x in ratios)} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "load": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
