"""nowgate.__main__: `python -m nowgate check PATH` and the start-up refusals of `serve`."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nowgate.__main__ import main, parser

REPO = Path(__file__).resolve().parents[1]
BROKEN = Path("tests") / "fixtures" / "broken"


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m nowgate ARGS` from the repository root, without the caller's NOWGATE_ settings."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("NOWGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "nowgate", *args],
        cwd=REPO, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.fixture(autouse=True)
def from_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    # main() puts the working directory on sys.path, as `python -m nowgate` run there would.
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in list(os.environ):
        if name.startswith("NOWGATE_"):
            monkeypatch.delenv(name)


def test_check_of_the_demo_policy_exits_zero_and_summarises_it() -> None:
    result = run("check", "policies/demo.toml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "policies/demo.toml: ok (3 functions, 1 client functions, 0 client-writable variables)"
    )


def test_check_of_a_broken_policy_exits_non_zero_naming_the_file_and_the_problem() -> None:
    path = str(BROKEN / "sync_handler.toml")
    result = run("check", path)
    assert result.returncode != 0
    assert result.stdout == ""
    assert f"{path}: functions.blocking: the handler must be an async function" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_in_production_without_keys_exits_non_zero_saying_what_to_set() -> None:
    result = run("serve", "--policy", "policies/demo.toml", NOWGATE_MODE="production")
    assert result.returncode != 0
    assert "NOWGATE_SECRET_KEYS" in result.stderr
    assert "NOWGATE_ALLOWED_ORIGINS" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_of_the_test_policy_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tests/fixtures/chat.toml"]) == 0
    assert "tests/fixtures/chat.toml: ok (" in capsys.readouterr().out


@pytest.mark.parametrize(
    "name, message",
    [
        ("unknown_top_level_key", "colour: Extra inputs are not permitted"),
        ("dunder_name", "functions.__init__: '__init__' is not a valid name"),
        ("untyped_parameter", "functions.untyped: parameter 'n' has no type annotation"),
        ("unimportable_handlers", "handlers: cannot import module"),
        ("invalid_toml", "not valid TOML"),
    ],
)
def test_check_of_broken_policies_names_file_and_problem(
    capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    path = str(BROKEN / f"{name}.toml")
    assert main(["check", path]) == 2
    output = capsys.readouterr()
    assert output.out == ""
    assert output.err.startswith(f"nowgate: policy refused: {path}: ")
    assert message in output.err


def test_check_of_a_missing_file_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "policies/nope.toml"]) == 2
    assert "policies/nope.toml: cannot read the file" in capsys.readouterr().err


def test_serve_in_production_with_a_short_key_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOWGATE_MODE", "production")
    monkeypatch.setenv("NOWGATE_SECRET_KEYS", "short")
    monkeypatch.setenv("NOWGATE_ALLOWED_ORIGINS", "https://example.com")
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--policy", "policies/demo.toml"])
    message = str(exited.value.code)
    assert message.startswith("nowgate: invalid settings: ")
    assert "NOWGATE_SECRET_KEYS must be 32+ characters" in message


def test_serve_refuses_a_broken_policy_before_starting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # serve configures the root logger for the process; not inside the test runner.
    monkeypatch.setattr("nowgate.__main__.configure_logging", lambda *args, **kwargs: None)
    assert main(["serve", "--policy", str(BROKEN / "missing_hook.toml")]) == 2
    assert "hooks.connect: tests.fixtures.broken.handlers has no 'nothere'" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("argv", [[], ["check"], ["serve"], ["frobnicate"]])
def test_usage_errors_exit_with_status_2(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: nowgate" in capsys.readouterr().err


def test_every_subcommand_and_option_has_help_text() -> None:
    root = parser()
    (commands,) = [a for a in root._actions if isinstance(a, argparse._SubParsersAction)]
    assert {choice.dest for choice in commands._choices_actions} >= {"serve", "check"}
    for choice in commands._choices_actions:
        assert choice.help, choice.dest
        for action in commands.choices[choice.dest]._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"{choice.dest} {action.option_strings or action.dest}"


def test_the_console_script_and_python_m_print_the_same_help() -> None:
    script = Path(sys.executable).parent / "nowgate"
    for command in ([str(script)], [sys.executable, "-m", "nowgate"]):
        result = subprocess.run([*command, "serve", "--help"], cwd=REPO, capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert "--tune-gc, --no-tune-gc" in result.stdout
        assert "usage: nowgate serve" in result.stdout


def test_importing_the_client_does_not_load_the_server_stack() -> None:
    probe = (
        "import sys, nowgate.client\n"
        "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'redis', "
        "'prometheus_client', 'slowapi') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_the_library_leaves_the_process_gc_settings_alone() -> None:
    # Only `nowgate serve --tune-gc` changes them: building an application does not.
    probe = (
        "import gc; before = gc.get_threshold()\n"
        "from pathlib import Path\n"
        "import nowgate\n"
        "app = nowgate.create_app(nowgate.Settings(), "
        "nowgate.load_policy(Path('policies/demo.toml')))\n"
        "import nowgate.server\n"
        "print(gc.get_threshold() == before, gc.get_freeze_count())"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stdout.strip() == "True 0"
