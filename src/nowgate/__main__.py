"""Command line: `python -m nowgate serve --policy PATH`, `python -m nowgate check PATH`."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

from pydantic import ValidationError

from .errors import PolicyFileError
from .logs import configure_logging
from .policy import load_policy
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
        policy = load_policy(path)
    except PolicyFileError as error:
        print(f"nowgate: policy refused: {error}", file=sys.stderr)
        return 2
    print(
        f"{path}: ok ({len(policy.functions)} functions, "
        f"{len(policy.client_functions)} client functions, "
        f"{len(policy.variables)} client-writable variables)"
    )
    return 0


def _serve(
    policy_path: Path, host: str, port: int, static_dir: Path | None, workers: int = 1
) -> int:
    from .application import create_app
    from .server import serve
    from .workers import REQUIRES_REDIS, run_workers

    settings = _settings() if static_dir is None else _settings(static_dir=static_dir)
    if workers < 1:
        print("nowgate: --workers must be 1 or more", file=sys.stderr)
        return 2
    if workers > 1 and not settings.redis_url:
        print(REQUIRES_REDIS.format(count=workers), file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    try:
        policy = load_policy(policy_path)
    except PolicyFileError as error:
        print(f"nowgate: policy refused: {error}", file=sys.stderr)
        return 2
    if not settings.secret_keys:
        log.warning("no NOWGATE_SECRET_KEYS set: identities will not survive a restart")
    if workers > 1:
        def serve_worker(worker_settings: Settings, sock: socket.socket) -> None:
            serve(create_app(worker_settings, policy), worker_settings, host, port, [sock])

        return run_workers(workers, settings, host, port, serve_worker)
    serve(create_app(settings, policy), settings, host, port)
    return 0


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
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes on this port, one cluster through NOWGATE_REDIS_URL (required when "
        "more than 1); default 1",
    )
    check = commands.add_parser("check", help="validate a policy against its handlers")
    check.add_argument("policy", type=Path)
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args.policy)
    return _serve(args.policy, args.host, args.port, args.static, args.workers)


if __name__ == "__main__":
    sys.exit(main())
