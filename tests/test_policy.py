"""nowgate.policy: policies load fail-closed, and authorize() is a deny-by-default table look-up."""

from __future__ import annotations

import dataclasses
import sys
import tomllib
from pathlib import Path

import pytest

from app.demo import Position
from nowgate.__main__ import main
from nowgate.errors import PolicyFileError
from nowgate.policy import Policy, load_policy
from tests.fixtures import handlers as chat_handlers

REPO = Path(__file__).resolve().parents[1]
DEMO_POLICY = REPO / "policies" / "demo.toml"
CHAT_POLICY = REPO / "tests" / "fixtures" / "chat.toml"
BROKEN = REPO / "tests" / "fixtures" / "broken"
BROKEN_PARAMETERS = "tests.fixtures.broken.parameters"
NOBODY: frozenset[str] = frozenset()


def write_policy(directory: Path, text: str, handlers: str = "tests.fixtures.handlers") -> Path:
    path = directory / "policy.toml"
    path.write_text(f'handlers = "{handlers}"\n' + text, encoding="utf-8")
    return path


def refusal(path: Path) -> PolicyFileError:
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    return caught.value


@pytest.fixture(scope="module")
def chat() -> Policy:
    return load_policy(CHAT_POLICY)


# Policies that load ----------------------------------------------------------------------


def test_demo_policy_loads_with_its_functions_client_functions_and_hook() -> None:
    policy = load_policy(DEMO_POLICY)
    assert set(policy.functions) == {"grab", "syncPosition", "release"}
    assert set(policy.client_functions) == {"updatePosition"}
    assert dict(policy.variables) == {}
    assert policy.on_disconnect is not None
    assert policy.authenticate is None and policy.on_connect is None
    sync = policy.functions["syncPosition"]
    assert sync.rule.max_bytes == 512
    assert sync.rate is not None and sync.rate.amount == 150
    assert sync.arguments.names == ("position",)
    assert sync.arguments.wants_context


def test_demo_policy_validates_positions_with_the_handler_types() -> None:
    validator = load_policy(DEMO_POLICY).functions["syncPosition"].arguments
    assert validator.validate([{"left": 10, "top": 20}]) == {
        "position": Position(left=10, top=20)
    }


def test_chat_policy_loads_every_declared_part(chat: Policy) -> None:
    declared = tomllib.loads(CHAT_POLICY.read_text(encoding="utf-8"))
    assert set(chat.functions) == set(declared["functions"])
    assert {"join", "say", "ask", "boom", "add", "adminOnly", "limited"} <= set(chat.functions)
    assert set(chat.client_functions) == set(declared["client_functions"]) == {"message", "answer"}
    assert chat.client_functions["answer"].timeout == 2.0
    assert chat.client_functions["message"].timeout is None
    assert set(chat.variables) == {"nickname"}
    assert chat.variables["nickname"].scope == "client"
    assert chat.authenticate is chat_handlers.authenticate
    assert chat.on_connect is chat_handlers.on_connect
    assert chat.on_disconnect is None
    assert chat.functions["adminOnly"].rule.roles == ("admin",)
    assert chat.functions["add"].arguments.wants_context is False
    assert chat.source == str(CHAT_POLICY)


def test_functions_without_settings_get_the_defaults(chat: Policy) -> None:
    join = chat.functions["join"]
    assert join.rate is None
    assert join.rule.max_bytes == 16_384
    assert join.rule.roles == () and join.rule.groups == ()


def test_a_loaded_policy_cannot_be_changed(chat: Policy) -> None:
    with pytest.raises(TypeError):
        chat.functions["evil"] = chat.functions["boom"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        chat.authenticate = None  # type: ignore[misc]


# Broken policies fail closed, naming the file and the key ----------------------------------


@pytest.mark.parametrize(
    "name, key, problem",
    [
        ("unknown_top_level_key", "colour", "Extra inputs are not permitted"),
        ("unknown_function_key", "functions.ping.rat", "Extra inputs are not permitted"),
        ("missing_function", "functions.nothere", "has no 'nothere'"),
        ("sync_handler", "functions.blocking", "must be an async function"),
        ("untyped_parameter", "functions.untyped", "parameter 'n' has no type annotation"),
        ("any_parameter", "functions.anything", "parameter 'value' is typed Any"),
        ("dict_any_parameter", "functions.loose_mapping", "parameter 'value' is typed Any"),
        ("star_args", "functions.variadic", "*args and **kwargs cannot be validated"),
        ("star_kwargs", "functions.keywords", "*args and **kwargs cannot be validated"),
        ("dunder_name", "functions.__init__", "'__init__' is not a valid name"),
        ("dashed_name", "functions.bad-name", "'bad-name' is not a valid name"),
        ("bad_rate", "functions.ping.rate", "'lots' is not a rate"),
        ("client_function_without_stub", "client_functions.nothere", "has no 'nothere'"),
        ("client_function_without_return", "client_functions.unannotated",
         "declare the return type"),
        ("writable_client_id", "variables.client_id", "identity fields can never"),
        ("writable_groups", "variables.groups", "identity fields can never"),
        ("missing_hook", "hooks.connect", "has no 'nothere'"),
        ("dunder_hook", "hooks.connect", "'__builtins__' is not a valid name"),
        ("sync_hook", "hooks.connect", "must be an async function"),
        ("unimportable_handlers", "handlers", "cannot import module"),
    ],
)
def test_broken_policy_fails_naming_the_file_and_the_key(name: str, key: str, problem: str) -> None:
    path = BROKEN / f"{name}.toml"
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    error = caught.value
    assert error.source == str(path)
    assert error.key == key
    assert problem in error.problem
    assert str(error) == f"{path}: {key}: {error.problem}"


def test_invalid_toml_fails_naming_the_file_and_the_line() -> None:
    path = BROKEN / "invalid_toml.toml"
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: not valid TOML: ")
    assert "line 3" in str(caught.value)


def test_missing_file_fails_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    assert str(caught.value) == f"{path}: cannot read the file (No such file or directory)"


def test_unreadable_file_fails_naming_the_file(tmp_path: Path) -> None:
    # A directory cannot be read as a file, even by root (unlike a chmod 000 file).
    with pytest.raises(PolicyFileError) as caught:
        load_policy(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: cannot read the file (")


def test_file_that_is_not_utf8_fails_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'handlers = "caf\xe9"\n')
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: not valid TOML: ")


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ("", "handlers", "Field required"),
        ('[functions.join]\nrate = 5\n', "functions.join.rate", "valid string"),
        ('[functions.join]\nrate = "10/fortnight"\n', "functions.join.rate", "is not a rate"),
        ('[functions.join]\nmax_bytes = 10\n', "functions.join.max_bytes", "greater than"),
        ('[functions.join]\nmax_bytes = "1024"\n', "functions.join.max_bytes", "valid integer"),
        ('[functions.join]\nroles = "admin"\n', "functions.join.roles", "valid tuple"),
        ('[functions.join]\ngroups = ["red room"]\n', "functions.join.groups",
         "does not match"),
        ('[functions.__class__]\n', "functions.__class__", "is not a valid name"),
        ('[client_functions.answer]\ntimeout = 0\n', "client_functions.answer.timeout",
         "greater than 0"),
        ('[client_functions.answer]\nretries = 1\n', "client_functions.answer.retries",
         "Extra inputs"),
        ('[variables.nickname]\nscope = "galaxy"\nschema = "Nickname"\n',
         "variables.nickname.scope", "Input should be"),
        ('[variables.nickname]\nscope = "client"\nschema = "Missing"\n',
         "variables.nickname.schema", "has no 'Missing'"),
        ('[variables.nickname]\nscope = "client"\n', "variables.nickname.schema",
         "Field required"),
        ('[variables.token]\nscope = "client"\nschema = "Nickname"\n', "variables.token",
         "identity fields"),
        ('[variables.roles]\nscope = "client"\nschema = "Nickname"\n', "variables.roles",
         "identity fields"),
        ('[hooks]\nauthenticate = "missing"\n', "hooks.authenticate", "has no 'missing'"),
        ('[hooks]\nreconnect = "on_connect"\n', "hooks.reconnect", "Extra inputs"),
    ],
)
def test_policy_mistakes_fail_naming_the_key(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write_policy(tmp_path, text) if text else tmp_path / "empty.toml"
    if not text:
        path.write_text("", encoding="utf-8")
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{path}: {key}: ")


@pytest.mark.parametrize(
    "function, parameter",
    [("underscored", "_x"), ("model_config", "model_config"), ("schema", "schema"),
     ("copy", "copy")],
)
def test_a_handler_parameter_named_like_a_pydantic_internal_is_refused_naming_the_function(
    tmp_path: Path, function: str, parameter: str
) -> None:
    path = write_policy(tmp_path, f"[functions.{function}]\n", BROKEN_PARAMETERS)
    error = refusal(path)
    assert error.key == f"functions.{function}"
    assert f"parameter {parameter!r}" in error.problem
    assert str(error).startswith(f"{path}: functions.{function}: ")


@pytest.mark.parametrize(
    "function, model",
    [("loose", "Loose"), ("allowing", "Allowing"), ("loose_list", "Loose"),
     ("loose_optional", "Loose"), ("loose_field", "Loose")],
    ids=["direct", "extra-allow", "list-of", "optional", "field-of-a-strict-model"],
)
def test_a_parameter_reaching_a_model_that_does_not_forbid_extra_fields_is_refused_naming_it(
    tmp_path: Path, function: str, model: str
) -> None:
    error = refusal(write_policy(tmp_path, f"[functions.{function}]\n", BROKEN_PARAMETERS))
    assert error.key == f"functions.{function}"
    assert f"model {model} must set extra='forbid'" in error.problem


@pytest.mark.parametrize(
    "module, exception",
    [("raises_at_import", "RuntimeError"), ("syntax_error_at_import", "SyntaxError")],
)
def test_a_handlers_module_that_fails_while_importing_is_refused_naming_handlers(
    tmp_path: Path, module: str, exception: str
) -> None:
    path = write_policy(tmp_path, "[functions.ping]\n", f"tests.fixtures.broken.{module}")
    error = refusal(path)
    assert error.key == "handlers"
    assert f"importing the module failed ({exception}: " in error.problem
    assert str(error).startswith(f"{path}: handlers: ")


@pytest.mark.parametrize("module", ["raises_at_import", "syntax_error_at_import"])
def test_check_of_a_policy_whose_handlers_fail_while_importing_exits_non_zero_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    module: str,
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() prepends the working directory
    monkeypatch.chdir(REPO)
    path = write_policy(tmp_path, "[functions.ping]\n", f"tests.fixtures.broken.{module}")
    assert main(["check", str(path)]) == 2
    output = capsys.readouterr()
    assert output.out == ""
    assert output.err.startswith(f"nowgate: policy refused: {path}: handlers: importing ")
    assert "Traceback" not in output.err


@pytest.mark.parametrize("module", ["../etc/passwd", "os; rm", "tests/fixtures/handlers", ""])
def test_handlers_that_are_not_a_module_name_fail(tmp_path: Path, module: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f'handlers = "{module}"\n', encoding="utf-8")
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    assert caught.value.key == "handlers"
    assert "dotted module name" in caught.value.problem


def test_a_name_is_looked_up_in_the_module_namespace_never_as_an_attribute(
    tmp_path: Path,
) -> None:
    from tests.fixtures.broken import dynamic

    assert callable(dynamic.conjured_by_getattr)  # what getattr() would have found
    path = tmp_path / "policy.toml"
    path.write_text(
        'handlers = "tests.fixtures.broken.dynamic"\n[functions.defined]\n'
        "[functions.conjured_by_getattr]\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    assert caught.value.key == "functions.conjured_by_getattr"
    assert "has no 'conjured_by_getattr'" in caught.value.problem


# authorize(): deny by default, roles and groups -------------------------------------------


def test_a_function_without_rules_is_callable_by_everyone(chat: Policy) -> None:
    assert chat.authorize("say", NOBODY, set())
    assert chat.authorize("say", frozenset({"admin"}), {"red"})


def test_a_role_rule_admits_only_clients_with_that_role(chat: Policy) -> None:
    assert not chat.authorize("adminOnly", NOBODY, set())
    assert not chat.authorize("adminOnly", frozenset({"editor"}), {"admin"})
    assert chat.authorize("adminOnly", frozenset({"admin"}), set())
    assert chat.authorize("adminOnly", frozenset({"editor", "admin"}), set())


def test_a_group_rule_admits_members_of_any_listed_group(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, '[functions.say]\ngroups = ["red", "blue"]\n'))
    assert not policy.authorize("say", NOBODY, set())
    assert not policy.authorize("say", NOBODY, {"green"})
    assert policy.authorize("say", NOBODY, {"green", "blue"})
    assert not policy.authorize("say", frozenset({"red"}), set())


def test_a_group_rule_accepts_every_group_name_the_registry_accepts(tmp_path: Path) -> None:
    policy = load_policy(
        write_policy(tmp_path, '[functions.say]\ngroups = ["team-1", "room.2", "a:b"]\n')
    )
    assert policy.functions["say"].rule.groups == ("team-1", "room.2", "a:b")
    assert policy.authorize("say", NOBODY, {"team-1"})
    assert policy.authorize("say", NOBODY, {"a:b"})
    assert not policy.authorize("say", NOBODY, {"team-2"})


@pytest.mark.parametrize("group", ["bad name", "-team", "x" * 65, "caf\u00e9"])
def test_a_group_rule_naming_a_group_the_registry_refuses_fails_at_load(
    tmp_path: Path, group: str
) -> None:
    error = refusal(write_policy(tmp_path, f'[functions.say]\ngroups = ["{group}"]\n'))
    assert error.key == "functions.say.groups"
    assert "does not match" in error.problem


def test_roles_and_groups_rules_admit_either(tmp_path: Path) -> None:
    policy = load_policy(
        write_policy(tmp_path, '[functions.say]\nroles = ["mod"]\ngroups = ["red"]\n')
    )
    assert policy.authorize("say", frozenset({"mod"}), set())
    assert policy.authorize("say", NOBODY, {"red"})
    assert not policy.authorize("say", NOBODY, set())


def test_an_undeclared_function_is_denied_even_if_the_module_defines_it(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, "[functions.say]\n"))
    assert hasattr(chat_handlers, "boom")
    assert not policy.authorize("boom", frozenset({"admin"}), {"red"})
    assert policy.callable_names(frozenset({"admin"}), {"red"}) == ["say"]


@pytest.mark.parametrize(
    "name",
    ["__class__", "__init__", "__dict__", "__getattribute__", "constructor", "get", "keys",
     "authorize", "functions", "source", "", "now.hello"],
)
def test_names_that_are_not_declared_are_never_found(chat: Policy, name: str) -> None:
    assert not chat.authorize(name, frozenset({"admin"}), {"red"})
    assert name not in chat.callable_names(frozenset({"admin"}), {"red"})


def test_callable_names_lists_exactly_what_authorize_allows(chat: Policy) -> None:
    everyone = sorted(
        name for name, function in chat.functions.items()
        if not function.rule.roles and not function.rule.groups
    )
    assert "adminOnly" not in everyone
    assert chat.callable_names(NOBODY, set()) == everyone
    admin = sorted(
        name for name, function in chat.functions.items() if "admin" in function.rule.roles
    )
    assert chat.callable_names(frozenset({"admin"}), set()) == sorted(everyone + admin)
    staff = sorted(
        name for name, function in chat.functions.items() if "staff" in function.rule.groups
    )
    assert staff and chat.callable_names(NOBODY, {"staff"}) == sorted(everyone + staff)
