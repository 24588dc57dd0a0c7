"""`nowgate report POLICY`: the attack surface of a policy, for a security review.

The command is run as an operator would (a subprocess, settings in the environment); the JSON
form must validate against the schema the package ships, and the content must be what the
policy and the settings say: functions with their callers, limits and schemas, client
functions, writable variables, hooks, and every risky setting flagged without a secret shown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import jsonschema
import pytest

from nowgate.policy import load_policy
from nowgate.report import build_report, report_schema
from nowgate.settings import Settings
from tests.support.gateway import DEMO_POLICY, REPO

KEY = "k" * 40


def report(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("NOWGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "nowgate", "report", *args],
        cwd=REPO, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False,
    )


def report_json(policy: str = "policies/demo.toml", **env: str) -> dict[str, Any]:
    result = report(policy, "--format", "json", **env)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(document, report_schema())
    return document


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def flags(document: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {flag["subject"]: (flag["severity"], flag["message"]) for flag in document["flags"]}


def test_the_demo_policy_report_lists_its_functions_with_limits_and_schemas() -> None:
    document = report_json()
    assert document["policy"] == "policies/demo.toml"
    functions = by_name(document["functions"])
    assert sorted(functions) == ["grab", "release", "syncPosition"]
    sync = functions["syncPosition"]
    assert (sync["callers"], sync["rate"], sync["max_bytes"]) == ("everyone", "150/second", 512)
    # The argument schema is the handler's, strict: Position with its bounds, nothing extra.
    parameters = sync["parameters"]
    assert parameters["required"] == ["position"]
    assert parameters["additionalProperties"] is False
    position = parameters["$defs"]["Position"]
    assert position["additionalProperties"] is False
    assert position["properties"]["left"] == {
        "maximum": 10000, "minimum": 0, "title": "Left", "type": "number"}
    assert sync["result"] == {"type": "boolean"}
    assert functions["grab"]["parameters"]["properties"] == {}
    assert functions["grab"]["result"]["properties"]["granted"]["type"] == "boolean"
    assert functions["release"]["result"] == {"type": "null"}
    (update,) = document["client_functions"]
    assert update["name"] == "updatePosition"
    assert (update["timeout"], update["timeout_from"]) == (10.0, "NOWGATE_CALL_TIMEOUT")
    assert update["parameters"]["required"] == ["position"]
    assert update["result"] == {"type": "null"}
    assert document["variables"] == []
    assert document["hooks"] == {"authenticate": None, "connect": None,
                                 "disconnect": "on_disconnect"}


def test_development_settings_are_flagged() -> None:
    found = flags(report_json())
    assert found["settings.mode"][0] == "high"
    assert found["settings.secret_keys"][0] == "high"
    assert found["settings.allowed_origins"][0] == "medium"
    assert found["settings.allow_missing_origin"][0] == "low"
    assert found["settings.allowed_hosts"][0] == "low"
    assert found["hooks.authenticate"][0] == "info"


def test_a_production_configuration_keeps_only_what_is_left_to_flag() -> None:
    document = report_json(
        NOWGATE_MODE="production", NOWGATE_SECRET_KEYS=KEY,
        NOWGATE_ALLOWED_ORIGINS="https://site.example", NOWGATE_ALLOWED_HOSTS="site.example",
        NOWGATE_TRUSTED_PROXIES="127.0.0.1",
    )
    assert [f for f in document["flags"] if f["subject"].startswith("settings.")] == []
    settings = by_name(document["settings"])
    assert settings["secret_keys"]["value"] == "1 key(s), shortest 40 characters"
    assert settings["allowed_origins"]["value"] == ["https://site.example"]
    assert settings["mode"]["variable"] == "NOWGATE_MODE"


def in_process(**settings: Any) -> dict[str, Any]:
    """The report of the demo policy under these settings, without a subprocess."""
    document = build_report(load_policy(DEMO_POLICY), Settings(**settings))
    jsonschema.validate(document, report_schema())
    return document


@pytest.mark.parametrize(
    ("setting", "value", "severity"),
    [
        ("trusted_proxies", "10.0.0.0/8", "medium"),
        ("trusted_proxies", "*", "high"),
        ("trusted_proxies", "::/0", "high"),
        ("max_message_bytes", 1048576, "medium"),
        ("violation_limit", 1000, "medium"),
        ("token_max_age", 30 * 86400, "medium"),
        ("connection_rate", "5000/second", "medium"),
        ("http_rate", "100/second", "medium"),
        ("metrics_host", "0.0.0.0", "medium"),
        ("rate_limit_storage", "memory://", "low"),
    ],
)
def test_risky_values_are_flagged(setting: str, value: Any, severity: str) -> None:
    # Metrics on and a backplane configured, so that the settings they qualify can be risky.
    context = {"metrics_port": 9100, "redis_url": "redis://127.0.0.1:6379"}
    if setting == "rate_limit_storage":
        del context["redis_url"]
        assert "settings.rate_limit_storage" not in flags(in_process(**context))
        context["redis_url"] = "redis://127.0.0.1:6379"
    else:
        assert f"settings.{setting}" not in flags(in_process(**context))
    assert flags(in_process(**{**context, setting: value}))[f"settings.{setting}"][0] == severity


def test_limits_near_their_defaults_are_not_flagged() -> None:
    found = flags(in_process(max_message_bytes=131072, trusted_proxies="192.168.1.0/24",
                             connection_rate="400/second", violation_limit=40))
    for subject in ("max_message_bytes", "trusted_proxies", "connection_rate", "violation_limit"):
        assert f"settings.{subject}" not in found


def test_no_secret_reaches_the_report() -> None:
    env = {"NOWGATE_SECRET_KEYS": KEY, "NOWGATE_REDIS_URL": "redis://user:pa55word@cache:6379/0"}
    for output_format in ("markdown", "json"):
        result = report("policies/demo.toml", "--format", output_format, **env)
        assert result.returncode == 0, result.stderr
        assert KEY not in result.stdout and "pa55word" not in result.stdout
        assert "redis://***@cache:6379/0" in result.stdout


def test_roles_groups_variables_and_hooks_of_a_richer_policy() -> None:
    document = report_json("tests/fixtures/chat.toml")
    functions = by_name(document["functions"])
    assert (functions["adminOnly"]["callers"], functions["adminOnly"]["roles"]) == (
        "restricted", ["admin"])
    assert functions["staffOnly"]["groups"] == ["staff"]
    assert functions["limited"]["rate"] == "3/minute"
    assert functions["say"]["parameters"]["properties"]["text"]["maxLength"] == 200
    (nickname,) = document["variables"]
    assert (nickname["name"], nickname["scope"], nickname["rate"]) == ("nickname", "client", None)
    assert nickname["schema"] == {"maxLength": 20, "minLength": 1, "type": "string"}
    answer = by_name(document["client_functions"])["answer"]
    assert (answer["timeout"], answer["timeout_from"]) == (2.0, "policy")
    assert answer["result"] == {"type": "string"}
    assert document["hooks"]["authenticate"] == "authenticate"
    found = flags(document)
    assert found["functions.say"][0] == "low"  # no rate of its own
    assert "functions.limited" not in found
    assert found["variables.nickname"][0] == "low"
    assert "hooks.authenticate" not in found


def test_the_markdown_report_shows_the_same_surface() -> None:
    result = report("policies/demo.toml")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("# Attack surface of `policies/demo.toml`\n")
    assert "3 callable functions, 1 client functions, 0 client-writable variables" in text
    assert "| high | `settings.mode` | development mode" in text
    assert "### `syncPosition`\n\n- callers: everyone\n- rate: 150/second\n" in text
    assert "- max_bytes: 512 (effective 512)" in text
    assert '"maximum": 10000' in text
    assert "### `updatePosition`\n\n- timeout: 10.0 s (from NOWGATE_CALL_TIMEOUT)" in text
    assert "None: clients cannot write any variable." in text
    assert "| disconnect | `on_disconnect` |" in text
    assert "| `NOWGATE_MAX_MESSAGE_BYTES` | 65536 | 65536 |  |" in text


def test_a_policy_that_cannot_load_is_refused_with_exit_status_2() -> None:
    missing = report("policies/absent.toml")
    assert missing.returncode == 2 and missing.stdout == ""
    assert "policies/absent.toml" in missing.stderr and "cannot read" in missing.stderr
