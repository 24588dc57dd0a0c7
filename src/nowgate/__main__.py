"""Command line: `nowgate serve --policy PATH`, `nowgate check PATH`, `nowgate report PATH`,
`nowgate probe URL`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import PolicyFileError
from .logs import configure_logging
from .policy import load_policy
from .scope import Context
from .settings import Settings

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


def _check(path: Path) -> int:
    try:
        policy = load_policy(path, Context)
    except PolicyFileError as error:
        print(f"nowgate: policy refused: {error}", file=sys.stderr)
        return 2
    print(
        f"{path}: ok ({len(policy.functions)} functions, "
        f"{len(policy.client_functions)} client functions, "
        f"{len(policy.variables)} client-writable variables)"
    )
    return 0


def _serve(policy_path: Path, host: str, port: int, static_dir: Path | None) -> int:
    from .application import create_app
    from .server import serve

    settings = _settings() if static_dir is None else _settings(static_dir=static_dir)
    configure_logging(settings.log_format)
    try:
        policy = load_policy(policy_path, Context)
    except PolicyFileError as error:
        print(f"nowgate: policy refused: {error}", file=sys.stderr)
        return 2
    if not settings.secret_keys:
        log.warning("no NOWGATE_SECRET_KEYS set: identities will not survive a restart")
    serve(create_app(settings, policy), settings, host, port)
    return 0


def _report(path: Path, output_format: str) -> int:
    from .report import build_report, render_markdown

    settings = _settings()
    try:
        policy = load_policy(path, Context)
    except PolicyFileError as error:
        print(f"nowgate: policy refused: {error}", file=sys.stderr)
        return 2
    report = build_report(policy, settings)
    if output_format == "json":
        print(json.dumps(report, indent=2))
    else:
        print(render_markdown(report), end="")
    return 0


def _add_report_command(commands: Any) -> None:
    report = commands.add_parser(
        "report", help="the attack surface of a policy under the current NOWGATE_ settings"
    )
    report.add_argument("policy", type=Path)
    report.add_argument("--format", choices=("markdown", "json"), default="markdown")


def _add_probe_command(commands: Any) -> None:
    from .probe import CATEGORIES, ProbeOptions

    defaults = ProbeOptions(url="")
    probe = commands.add_parser(
        "probe",
        help="a bounded, non-destructive adversarial check of a deployment you operate",
        description="Exit status: 0 nothing found, 1 findings, 2 cannot probe, "
        "3 stopped early (budget or signs of distress).",
    )
    probe.add_argument("url", help="the deployment's base address, http(s)://host[:port]")
    probe.add_argument("--ws-path", default=defaults.ws_path)
    probe.add_argument("--origin", help="the site's allowed origin (default: the URL's own)")
    probe.add_argument("--format", choices=("markdown", "json"), default="markdown")
    probe.add_argument("--cafile", help="CA certificates to trust for https/wss")
    probe.add_argument("--allow-valid-calls", action="store_true",
                       help="let the burst call a function that takes no arguments")
    probe.add_argument("--timeout", type=float, default=defaults.timeout,
                       help="seconds to wait for each answer")
    probe.add_argument("--burst", type=int, default=defaults.burst)
    probe.add_argument("--frame-bytes", type=int, default=defaults.frame_bytes)
    probe.add_argument("--max-functions", type=int, default=defaults.max_functions)
    probe.add_argument("--max-requests", type=int, default=defaults.max_requests)
    probe.add_argument("--max-connections", type=int, default=defaults.max_connections)
    probe.add_argument("--time-budget", type=float, default=defaults.time_budget)
    probe.add_argument("--skip", action="append", choices=CATEGORIES, default=[],
                       help="a category not to check (repeatable)")


def _probe(args: argparse.Namespace) -> int:
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


def main(argv: list[str] | None = None) -> int:
    # Handler modules named in policies are imported relative to the working directory.
    sys.path.insert(0, os.getcwd())
    parser = argparse.ArgumentParser(prog="python -m nowgate", description="nowgate gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--policy", type=Path, required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--static",
        type=Path,
        default=None,
        help="directory of the site's own files, served at / (default: NOWGATE_STATIC_DIR)",
    )
    check = commands.add_parser("check", help="validate a policy against its handlers")
    check.add_argument("policy", type=Path)
    _add_report_command(commands)
    _add_probe_command(commands)
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args.policy)
    if args.command == "report":
        return _report(args.policy, args.format)
    if args.command == "probe":
        return _probe(args)
    return _serve(args.policy, args.host, args.port, args.static)


if __name__ == "__main__":
    sys.exit(main())
