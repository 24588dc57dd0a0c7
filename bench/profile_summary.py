"""Summarise py-spy's collapsed stacks: where nowgate's CPU goes under the broadcast load.

    profile_summary.py PROFILE.collapsed [LOADGEN.json] [--json OUT]

Prints the share of samples by package (leaf frame), the top functions by own time, and the
top functions of app/ and of the WebSocket stack by inclusive time (a function counted once
per sample however deep it recurses).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
PACKAGES = (
    ("app/", "nowgate app/"),
    ("starlette/", "starlette"),
    ("fastapi/", "fastapi"),
    ("uvicorn/", "uvicorn"),
    ("websockets/", "websockets"),
    ("asyncio/", "asyncio"),
    ("uvloop/", "uvloop"),
    ("orjson", "orjson"),
    ("pydantic", "pydantic"),
    ("limits/", "limits"),
    ("prometheus_client/", "prometheus_client"),
    ("json/", "json (stdlib)"),
    ("itsdangerous/", "itsdangerous"),
)


def parse_frame(frame: str) -> tuple[str, str]:
    match = FRAME.match(frame)
    if not match:
        return frame, ""
    return match["func"], match["file"]


def package_of(path: str) -> str:
    for marker, name in PACKAGES:
        if marker in path:
            return name
    return "other" if path else "native/unknown"


def short(path: str) -> str:
    for marker in ("site-packages/", "/python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def summarise(collapsed: Path, top: int = 20) -> dict[str, Any]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [parse_frame(f) for f in stack.split(";")]
        # The thread name py-spy puts first is not a frame of code.
        frames = [(func, path) for func, path in frames if path]
        if not frames:
            continue
        leaf_func, leaf_path = frames[-1]
        own[f"{leaf_func} ({short(leaf_path)})"] += count
        packages[package_of(leaf_path)] += count
        for name in {f"{func} ({short(path)})" for func, path in frames}:
            inclusive[name] += count

    def pct(counter: Counter[str], keep: Any = lambda _: True) -> list[dict[str, Any]]:
        return [
            {"function": name, "percent": round(100 * n / total, 1)}
            for name, n in counter.most_common()
            if keep(name)
        ][:top]

    hot_path = ("app/", "starlette/", "uvicorn/", "websockets/")
    return {
        "samples": total,
        "by_package": [
            {"package": name, "percent": round(100 * n / total, 1)}
            for name, n in packages.most_common()
        ],
        "own_time": pct(own),
        "inclusive_app": pct(inclusive, lambda name: "(app/" in name),
        "inclusive_ws_stack": pct(
            inclusive, lambda name: any(f"({p}" in name for p in hot_path[1:])
        ),
    }


def render(summary: dict[str, Any], load: dict[str, Any] | None) -> str:
    lines = [f"py-spy: {summary['samples']} samples of the gateway's main thread (idle excluded)"]
    if load and "closed" in load:
        closed = load["closed"]
        lines.append(
            f"load: N={load['n']}, closed loop of {load['inflight']}: "
            f"{closed['deliveries_per_s']:,.0f} deliveries/s at {100 * closed['server_cpu']:.0f}% "
            "server CPU (profiler attached)"
        )
    lines += ["", "Own time by package (leaf frame):"]
    lines += [f"  {row['percent']:5.1f}%  {row['package']}" for row in summary["by_package"]]
    for key, title in (
        ("own_time", "Top functions by own time:"),
        ("inclusive_app", "app/ functions by inclusive time:"),
        ("inclusive_ws_stack", "starlette/uvicorn/websockets functions by inclusive time:"),
    ):
        lines += ["", title]
        lines += [f"  {row['percent']:5.1f}%  {row['function']}" for row in summary[key]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("collapsed", type=Path)
    parser.add_argument("loadgen", type=Path, nargs="?")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    summary = summarise(args.collapsed)
    load = None
    if args.loadgen and args.loadgen.exists() and args.loadgen.stat().st_size:
        load = json.loads(args.loadgen.read_text().strip().splitlines()[-1])
        summary["load"] = {k: v for k, v in load.items() if k in ("n", "closed", "setup", "rss")}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    print(render(summary, load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
