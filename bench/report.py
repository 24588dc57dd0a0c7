"""Aggregate one bench/run: bench/results/latest.{json,md,png}, and the table on stdout.

    bench/.venv/bin/python bench/report.py bench/results/raw/<stamp> [--elapsed SECONDS]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
SYSTEMS = ["nowgate", "nowgate_alt", "bare", "socketio_py", "socketio_node"]
LABELS = {
    "nowgate": "nowgate (all layers on)",
    "nowgate_alt": "nowgate, app/ from NOWGATE_ALT_ROOT",
    "bare": "bare FastAPI broadcast",
    "socketio_py": "python-socketio",
    "socketio_node": "socket.io (Node)",
}


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _versions() -> dict[str, str]:
    root = BENCH.parent
    versions: dict[str, str] = {"python": platform.python_version()}
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        versions["node"] = subprocess.run(
            ["node", "-v"], capture_output=True, text=True, check=True
        ).stdout.strip()
    for package in ("ws", "socket.io", "socket.io-client"):
        manifest = BENCH / "node_modules" / package / "package.json"
        if manifest.exists():
            versions[package] = json.loads(manifest.read_text())["version"]
    freeze = subprocess.run(
        [str(root / ".venv" / "bin" / "python"), "-m", "pip", "freeze"],
        capture_output=True, text=True, check=False,
    ).stdout
    for line in freeze.splitlines():
        name, _, version = line.partition("==")
        if name.lower() in {"uvicorn", "websockets", "fastapi", "starlette", "uvloop", "orjson"}:
            versions[name.lower()] = version
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True, check=False
    ).stdout
    for line in freeze.splitlines():
        name, _, version = line.partition("==")
        if name.lower() in {"python-socketio", "python-engineio"}:
            versions[name.lower()] = version
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        versions["nowgate_commit"] = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    return versions


def _machine(raw: Path) -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    machine: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
    }
    probe = raw / "machine.json"
    if probe.exists():
        machine.update(json.loads(probe.read_text()))
    return machine


def load(raw: Path) -> list[dict[str, Any]]:
    results = []
    for path in sorted(raw.glob("*-*.json")):
        if path.name == "machine.json":
            continue
        result = json.loads(path.read_text())
        if "system" in result and "n" in result:
            results.append(result)
    return results


def per_cpu(closed: dict[str, Any]) -> float | None:
    """Deliveries per second of server CPU: throughput with the machine's noise divided out."""
    cpu = closed.get("server_cpu")
    return closed["deliveries_per_s"] / cpu if cpu else None


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| system | N | deliveries/s | per server CPU-s | server CPU | loadgen CPU | "
        "closed p50 / p99 ms | fixed rate | fixed p50 / p99 / max ms | lost | "
        "set-up s (conn/s) | KiB/conn |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        if "closed" not in result:
            rows.append(f"| {result['system']} | {result.get('n')} | failed | | | | | | | | | |")
            continue
        closed, fixed = result["closed"], result.get("fixed") or {}
        setup, rss = result["setup"], result.get("rss") or {}
        lost = closed["lost"] + (fixed.get("lost") or 0)
        rows.append(
            f"| {result['system']} | {result['n']} | {_fmt(closed['deliveries_per_s'])} | "
            f"{_fmt(per_cpu(closed))} | {_fmt(100 * closed['server_cpu'])}% | "
            f"{_fmt(100 * closed['client_cpu'])}% | "
            f"{_fmt(closed['p50_ms'], 1)} / {_fmt(closed['p99_ms'], 1)} | "
            f"{_fmt(fixed.get('rate'))}/s | "
            f"{_fmt(fixed.get('p50_ms'), 2)} / {_fmt(fixed.get('p99_ms'), 2)} / "
            f"{_fmt(fixed.get('max_ms'), 1)} | {lost} | "
            f"{_fmt(setup['total_s'], 2)} ({_fmt(setup['conn_per_s'])}) | "
            f"{_fmt(rss.get('per_conn_kib'), 1)} |"
        )
    return "\n".join(rows)


def slow_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| system | N | deliveries/s without | with one stalled reader | ratio | p99 ms with | "
        "stalled reader closed with |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        slow = result.get("slow")
        if not slow:
            continue
        consumer = slow.get("consumer") or {}
        rows.append(
            f"| {result['system']} | {result['n']} | "
            f"{_fmt(result['closed']['deliveries_per_s'])} | {_fmt(slow['deliveries_per_s'])} | "
            f"{_fmt(slow['ratio_to_closed'], 2)} | {_fmt(slow['p99_ms'], 1)} | "
            f"{_fmt(consumer.get('close_code'))} |"
        )
    return "\n".join(rows) if len(rows) > 2 else ""


def targets(results: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    by = {(r["system"], r["n"]): r for r in results if "closed" in r}
    checks: list[dict[str, Any]] = []

    def ratio(n: int, other: str, goal: float, per_cpu_basis: bool, me: str = "nowgate") -> None:
        mine, theirs = by.get((me, n)), by.get((other, n))
        if not mine or not theirs:
            return
        if per_cpu_basis:
            a, b = per_cpu(mine["closed"]), per_cpu(theirs["closed"])
        else:
            a, b = mine["closed"]["deliveries_per_s"], theirs["closed"]["deliveries_per_s"]
        if not a or not b:
            return
        basis = "per server CPU-s" if per_cpu_basis else "deliveries/s"
        checks.append({
            "target": f"N={n}: {me} / {LABELS[other]} >= {goal:g}x ({basis})",
            "measured": round(a / b, 2),
            "met": a / b >= goal,
        })

    for me in ("nowgate", "nowgate_alt"):
        for n in (1000, 5000):
            for per_cpu_basis in (False, True):
                ratio(n, "bare", 0.9, per_cpu_basis, me)
                ratio(n, "socketio_py", 3.0, per_cpu_basis, me)
        for n, rate, limit in ((100, 200, 5.0), (1000, 100, 50.0)):
            fixed = (by.get((me, n)) or {}).get("fixed")
            if fixed and fixed.get("rate") == rate and fixed.get("p99_ms") is not None:
                checks.append({
                    "target": f"{me}: N={n}, {rate} calls/s: p99 < {limit:g} ms",
                    "measured": round(fixed["p99_ms"], 2),
                    "met": fixed["p99_ms"] < limit and not fixed["lost"],
                })
        idle = (by.get((me, 5000)) or {}).get("rss")
        if idle:
            checks.append({
                "target": f"{me}: N=5000: idle memory per connection <= ~31 KiB",
                "measured": round(idle["per_conn_kib"], 1),
                "met": idle["per_conn_kib"] <= 31 * 1.05,
            })
        for n in (100, 1000):
            slow = (by.get((me, n)) or {}).get("slow")
            if slow and slow.get("ratio_to_closed") is not None:
                checks.append({
                    "target": f"{me}: N={n}: a slow consumer costs the others nothing "
                    "(deliveries/s with it / without >= 0.9, nothing lost)",
                    "measured": round(slow["ratio_to_closed"], 2),
                    "met": slow["ratio_to_closed"] >= 0.9 and not slow["lost"],
                })
    lines = ["| target | measured | met |", "|---|---:|---|"]
    lines += [f"| {c['target']} | {c['measured']} | {'yes' if c['met'] else 'NO'} |"
              for c in checks]
    return "\n".join(lines), checks


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 5))
    for system in SYSTEMS:
        rows = sorted((r for r in results if r["system"] == system and "closed" in r),
                      key=lambda r: r["n"])
        if not rows:
            continue
        ns = [r["n"] for r in rows]
        left.plot(ns, [r["closed"]["deliveries_per_s"] for r in rows], "o-", label=LABELS[system])
        middle.plot(ns, [per_cpu(r["closed"]) or 0 for r in rows], "o-", label=LABELS[system])
        right.plot(ns, [r["closed"]["p99_ms"] for r in rows], "o-", label=LABELS[system])
    left.set_title("deliveries/s (closed loop, 32 calls in flight)")
    middle.set_title("deliveries per second of server CPU")
    right.set_title("p99 call -> receipt, ms (closed loop)")
    for axis in (left, middle, right):
        axis.set_xscale("log")
        axis.set_xlabel("subscribers N")
        axis.grid(True, which="both", alpha=0.3)
    right.set_yscale("log")
    left.legend()
    fig.suptitle("nowgate broadcast benchmark: server on 1 core, load generator on the other")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("raw", type=Path)
    parser.add_argument("--elapsed", type=float, default=None)
    args = parser.parse_args()
    results = load(args.raw)
    order = {s: i for i, s in enumerate(SYSTEMS)}
    results.sort(key=lambda r: (r.get("n", 0), order.get(r["system"], 99)))
    target_table, checks = targets(results)
    profile = args.raw / "profile.json"
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "raw": str(args.raw.relative_to(BENCH.parent)) if args.raw.is_relative_to(BENCH.parent)
        else str(args.raw),
        "elapsed_s": args.elapsed,
        "machine": _machine(args.raw),
        "versions": _versions(),
        "targets": checks,
        "profile": json.loads(profile.read_text()) if profile.exists() else None,
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(results, RESULTS / "latest.png")
    text = [
        f"nowgate broadcast benchmark, {summary['date']}"
        + (f" ({args.elapsed:.0f} s)" if args.elapsed else ""),
        "",
        table(results),
        "",
    ]
    slow = slow_table(results)
    if slow:
        text += ["Slow consumer (one extra subscriber that never reads):", "", slow, ""]
    text += ["Targets (ratios measured in this run):", "", target_table, ""]
    machine = summary["machine"]
    if "nowgate" in machine:
        text.append(f"nowgate: {machine['nowgate']}.")
    if machine.get("nowgate_alt"):
        text.append(f"nowgate_alt: app/ from {machine['nowgate_alt']}.")
    if "core1_share_before" in machine:
        text.append(
            f"Machine: {machine['cpu']}, {machine['cores']} cores; share of core 1 a busy loop "
            f"got: {machine['core1_share_before']:.0%} before, "
            f"{machine.get('core1_share_after', 0):.0%} after; load average "
            f"{machine.get('loadavg_before', '?')} before."
        )
    (RESULTS / "latest.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
