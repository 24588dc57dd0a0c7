"""Command line: `nowgate serve --policy PATH`, `nowgate check PATH`, `nowgate types PATH`,
`nowgate report PATH`, `nowgate probe URL` (or `python -m nowgate`).

One `add_<command>` function declares each subcommand's options and sets the function
that runs it (`args.run`); a new subcommand is one more such function in `COMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from .errors import PolicyFileError
from .logs import configure_logging
from .policy import Policy, load_policy
from .settings import Settings
from .startup import unreachable_redis

log = logging.getLogger("nowgate")


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in error.errors(include_url=False, include_input=False)
        )
        raise SystemExit(f"nowgate: invalid settings: {problems}") from None


def _policy(path: Path) -> Policy | None:
    try:
        return load_policy(path)
    except PolicyFileError as error:
        print(f"nowgate: policy refused: {error}", file=sys.stderr)
        return None


# check ------------------------------------------------------------------------------------


def add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "check",
        help="validate a policy against its handlers",
        description="Load a policy and its handler module as `serve` would; exit 0 if it "
        "is accepted, 2 with the file and key of the first problem if not.",
    )
    check.add_argument("policy", type=Path, help="the policy file (TOML)")
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> int:
    policy = _policy(args.policy)
    if policy is None:
        return 2
    print(
        f"{args.policy}: ok ({len(policy.functions)} functions, "
        f"{len(policy.client_functions)} client functions, "
        f"{len(policy.variables)} client-writable variables)"
    )
    return 0


# serve ------------------------------------------------------------------------------------


def add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the gateway",
        description="Run the stand-alone gateway under uvicorn with its WebSocket limits. "
        "Every other setting comes from NOWGATE_* environment variables (see the README).",
    )
    serve.add_argument(
        "--policy", type=Path, required=True, help="the policy file (TOML) naming the handlers"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--static",
        type=Path,
        default=None,
        help="directory of the site's own files, served at / (default: NOWGATE_STATIC_DIR)",
    )
    serve.add_argument(
        "--tune-gc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="freeze start-up objects and collect young objects less often, for many "
        "connections; process-wide (default: on)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving this one port as one cluster through NOWGATE_REDIS_URL "
        "(required when more than 1) (default: %(default)s)",
    )
    serve.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from .application import create_app
    from .server import serve, tune_gc
    from .workers import REQUIRES_REDIS, run_workers

    settings = _settings() if args.static is None else _settings(static_dir=args.static)
    if args.workers < 1:
        print("nowgate: --workers must be 1 or more", file=sys.stderr)
        return 2
    if args.workers > 1 and not settings.redis_url:
        print(REQUIRES_REDIS.format(count=args.workers), file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    policy = _policy(args.policy)
    if policy is None:
        return 2
    if not settings.secret_keys:
        log.warning("no NOWGATE_SECRET_KEYS set: identities will not survive a restart")
    unreachable = unreachable_redis(settings)
    if unreachable is not None:
        print(f"nowgate: {unreachable}", file=sys.stderr)
        return 1
    if args.workers > 1:
        # Each worker builds its own gateway after the fork (its own loop, hub, Redis).
        def serve_worker(worker_settings: Settings, sock: socket.socket) -> None:
            app = create_app(worker_settings, policy)
            if args.tune_gc:
                tune_gc()
            serve(app, app.state.gateway, args.host, args.port, [sock])

        return run_workers(args.workers, settings, args.host, args.port, serve_worker)
    app = create_app(settings, policy)
    if args.tune_gc:
        tune_gc()
    serve(app, app.state.gateway, args.host, args.port)
    return 0


# types ------------------------------------------------------------------------------------


def add_types(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    types = commands.add_parser(
        "types",
        help="TypeScript declarations (and OpenRPC) of a policy's `now`",
        description="Write the TypeScript declarations of the `now` object a page gets from "
        "this policy: the server functions it may call, the client functions it must "
        "implement, the variables it can read.",
    )
    types.add_argument("policy", type=Path, help="the policy file (TOML) naming the handlers")
    types.add_argument(
        "-o", "--output", type=Path, help="write the declarations here instead of stdout"
    )
    types.add_argument(
        "--openrpc", type=Path, help="also write the contract as an OpenRPC document (JSON)"
    )
    types.set_defaults(run=run_types)


def run_types(args: argparse.Namespace) -> int:
    from .contract import ContractError, load_contract, openrpc, typescript

    try:
        contract = load_contract(args.policy)
    except (PolicyFileError, ContractError) as error:
        print(f"nowgate: cannot describe the policy: {error}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.write(typescript(contract))
    else:
        args.output.write_text(typescript(contract), encoding="utf-8")
    if args.openrpc is not None:
        document = json.dumps(openrpc(contract), indent=2) + "\n"
        args.openrpc.write_text(document, encoding="utf-8")
    return 0


# report -----------------------------------------------------------------------------------


def add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report",
        help="the attack surface of a policy under the current settings",
        description="For a security review: every function clients can call (callers, rate, "
        "max_bytes, argument and result schemas), every client function, client-writable "
        "variable and hook, and the NOWGATE_* settings with risky values flagged. No secret "
        "is printed. Exit 0, or 2 if the policy cannot be loaded.",
    )
    report.add_argument("policy", type=Path, help="the policy file (TOML) naming the handlers")
    report.add_argument(
        "--format", choices=("markdown", "json"), default="markdown",
        help="markdown for people, json for tools (schema: nowgate/schemas/report.schema.json)",
    )
    report.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from .report import build_report, render_markdown

    settings = _settings()
    policy = _policy(args.policy)
    if policy is None:
        return 2
    report = build_report(policy, settings)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        print(render_markdown(report), end="")
    return 0


# probe ------------------------------------------------------------------------------------


def add_probe(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .probe import CATEGORIES, ProbeOptions

    defaults = ProbeOptions(url="")
    probe = commands.add_parser(
        "probe",
        help="a bounded, non-destructive adversarial check of a deployment you operate",
        description="Try from outside what tests/security/ proves, politely (one connection "
        "at a time, bounded, stops at signs of distress). Exit status: 0 nothing found, "
        "1 findings, 2 nothing to probe there, 3 stopped early.",
    )
    probe.add_argument("url", help="the deployment's base address, http(s)://host[:port]")
    probe.add_argument(
        "--ws-path", default=defaults.ws_path, help="WebSocket path (default: %(default)s)"
    )
    probe.add_argument("--origin", help="the site's allowed origin (default: the URL's own)")
    probe.add_argument(
        "--format", choices=("markdown", "json"), default="markdown",
        help="markdown for people, json for tools (schema: nowgate/schemas/probe.schema.json)",
    )
    probe.add_argument("--cafile", help="CA certificates to trust for https and wss")
    probe.add_argument(
        "--allow-valid-calls", action="store_true",
        help="let the burst call a function that takes no arguments (it then runs)",
    )
    probe.add_argument(
        "--timeout", type=float, default=defaults.timeout,
        help="seconds to wait for each answer (default: %(default)s)",
    )
    probe.add_argument(
        "--burst", type=int, default=defaults.burst,
        help="calls sent at once on one connection (default: %(default)s)",
    )
    probe.add_argument(
        "--frame-bytes", type=int, default=defaults.frame_bytes,
        help="size of the oversized frame (default: %(default)s)",
    )
    probe.add_argument(
        "--max-functions", type=int, default=defaults.max_functions,
        help="functions whose argument validation is tried (default: %(default)s)",
    )
    probe.add_argument(
        "--max-requests", type=int, default=defaults.max_requests,
        help="requests and frames in all (default: %(default)s)",
    )
    probe.add_argument(
        "--max-connections", type=int, default=defaults.max_connections,
        help="connections in all, one at a time (default: %(default)s)",
    )
    probe.add_argument(
        "--time-budget", type=float, default=defaults.time_budget,
        help="seconds for the whole run (default: %(default)s)",
    )
    probe.add_argument(
        "--skip", action="append", choices=CATEGORIES, default=[],
        help="a category not to check (repeatable)",
    )
    probe.set_defaults(run=run_probe_command)


def run_probe_command(args: argparse.Namespace) -> int:
    import asyncio

    from .probe import ProbeError, ProbeOptions, render_text, run_probe

    options = ProbeOptions(
        url=args.url, ws_path=args.ws_path, origin=args.origin, cafile=args.cafile,
        timeout=args.timeout, allow_valid_calls=args.allow_valid_calls, burst=args.burst,
        frame_bytes=args.frame_bytes, max_functions=args.max_functions,
        max_requests=args.max_requests, max_connections=args.max_connections,
        time_budget=args.time_budget, skip=frozenset(args.skip),
    )
    try:
        result = asyncio.run(run_probe(options))
    except ProbeError as error:
        print(f"nowgate probe: {error}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(render_text(result), end="")
    return result.exit_code


COMMANDS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    add_serve,
    add_check,
    add_types,
    add_report,
    add_probe,
)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="nowgate", description="nowgate: a hardened realtime gateway"
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    # Handler modules named in policies are imported relative to the working directory.
    sys.path.insert(0, os.getcwd())
    args = parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
