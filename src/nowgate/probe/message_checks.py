"""What a connected client can send: names, arguments, frames, bursts.

Nothing here calls a function with arguments a strict gateway would accept (unless
`--allow-valid-calls`): every call carries an unknown argument, a value of the wrong type, or
JSON that RFC 8259 does not allow. A strict gateway refuses them all; a lax server may run the
function with them, which is then the finding.

- method-lookup: internal, dunder and prototype names, `now.` internals, client functions and
  case variants of real names must all be "method not found".
- validation: unknown arguments; wrong types (learned from the server's own -32602 locations,
  then sent as strings where numbers are expected and so on); NaN, Infinity, unsafe integers,
  duplicate keys and lone surrogates; deep nesting and huge collections.
- frame-size: a frame past any sensible limit must close the connection unanswered; the
  permessage-deflate extension (compression bombs) must be declined.
- rate-limit: a burst on one connection must meet a rate limit or the violation budget.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from .context import Run
from .findings import Severity
from .wire import Outcome

HOSTILE_NAMES = (
    "__class__", "__init__", "__dict__", "__globals__", "__import__", "__builtins__",
    "__getattribute__", "constructor", "__proto__", "prototype", "toString", "hasOwnProperty",
    "now.__dict__", "now.__class__", "now.hello.__init__", "now.", "now.nowgateProbe",
    "eval", "exec", "os.system", "globals", "locals", "authenticate", "on_connect",
    "on_disconnect", "connect", "disconnect", "os", "sys", "time", "asyncio", "json",
)  # fmt: skip
NOT_FOUND = (-32601, -32600)
# The answers a strict server gives to non-standard JSON and to over-deep or over-large values.
PARSE_REFUSALS = (-32700, -32600)
NESTING_DEPTH = 64
COLLECTION_ITEMS = 1500
MAX_REPORTED_ERRORS = 10


async def check_method_lookup(run: Run) -> None:
    functions = set(run.welcome.functions)
    # A declared function is never among them: calling it with [] could be a valid call.
    names = [name for name in (*HOSTILE_NAMES, *run.welcome.client_functions)
             if name not in functions]
    for name in run.welcome.functions:
        variant = name.swapcase()
        if variant not in functions:
            names.append(variant)
    for name in names:
        outcome = await run.wire.call(name, [])
        run.inspect(outcome)
        if outcome.has_result:
            run.find("method-lookup", "high", "a name that was never declared reaches code "
                     "and runs", outcome.sent, outcome.received())
        elif outcome.reply is not None and outcome.error_code not in NOT_FOUND:
            crashed = outcome.error_code == -32603
            run.find("method-lookup", "high" if crashed else "medium",
                     "a name that was never declared resolves to something (answer "
                     f"{'-32603' if crashed else 'not -32601'})", outcome.sent, outcome.received())


# Validation -------------------------------------------------------------------------------


def _errors(outcome: Outcome) -> list[dict[str, Any]]:
    error = (outcome.reply or {}).get("error")
    data = error.get("data") if isinstance(error, dict) else None
    if not isinstance(data, list):
        return []
    return [item for item in data if isinstance(item, dict) and isinstance(item.get("loc"), list)]


def _confused(error_type: str) -> Any:
    """A value of the wrong type that a coercing validator turns into the expected one."""
    return {"int_type": "1", "int_parsing": "1", "float_type": "1", "float_parsing": "1",
            "string_type": 1, "bool_type": "true", "bool_parsing": "true"}.get(error_type)


class _Shape:
    """What the server's -32602 answers tell about one function's required arguments."""

    def __init__(self) -> None:
        self.leaves: dict[tuple[str, ...], str] = {}  # path -> error type of a wrong value
        self.models: dict[tuple[str, ...], list[str]] = {}  # path -> required field names

    def confused_value(self) -> dict[str, Any] | None:
        """Every required leaf with a wrong-typed value; None if any leaf's type is unknown."""
        value: dict[str, Any] = {}
        for path, error_type in self.leaves.items():
            wrong = _confused(error_type)
            if wrong is None:
                return None
            _place(value, path, wrong)
        return value or None


def _place(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


async def _learn(run: Run, name: str, unknown: str) -> _Shape | None:
    """Discover required arguments and their types from -32602 locations (two levels)."""
    outcome = await run.wire.call(name, {unknown: run.canary})
    run.inspect(outcome)
    if outcome.has_result:
        run.find("validation", "high", "an unknown argument is accepted (the function ran)",
                 outcome.sent, outcome.received())
        return None
    if outcome.error_code == -32603:
        run.find("validation", "medium", "arguments that fail validation reach the handler "
                 "(-32603 instead of -32602)", outcome.sent, outcome.received())
        return None
    errors = _errors(outcome)
    if outcome.error_code != -32602 or not errors:
        return None
    flagged = any(e.get("type") == "extra_forbidden" or unknown in json.dumps(e["loc"])
                  for e in errors)
    if not flagged and len(errors) < MAX_REPORTED_ERRORS:
        run.find("validation", "medium", "an unknown argument is not refused",
                 outcome.sent, outcome.received())
    shape = _Shape()
    pending: list[tuple[str, ...]] = [(str(e["loc"][0]),) for e in errors
               if e.get("type") == "missing" and len(e["loc"]) == 1]
    for _ in range(2):  # arguments, then the fields of model arguments
        if not pending:
            break
        probe: dict[str, Any] = {}
        for path in pending:
            _place(probe, path, {unknown: [[]]})
        probe[unknown] = run.canary
        outcome = await run.wire.call(name, probe)
        run.inspect(outcome)
        if outcome.has_result:
            run.find("validation", "high", "wrong-typed arguments are accepted (the function "
                     "ran)", outcome.sent, outcome.received())
            return None
        found = [(tuple(str(p) for p in e["loc"]), str(e.get("type"))) for e in _errors(outcome)]
        next_pending: list[tuple[str, ...]] = []
        for path in pending:
            inner = [(loc, kind) for loc, kind in found if loc[: len(path)] == path]
            missing = [loc[len(path)] for loc, kind in inner
                       if kind == "missing" and len(loc) == len(path) + 1]
            if missing:
                shape.models[path] = missing
                next_pending += [(*path, field) for field in missing]
            else:
                kinds = [kind for loc, kind in inner if loc == path]
                if kinds:
                    shape.leaves[path] = kinds[0]
        pending = next_pending
    return shape


async def check_validation(run: Run) -> None:
    unknown = "probe" + secrets.token_hex(3)
    names = list(run.welcome.functions)[: run.options.max_functions]
    if len(run.welcome.functions) > len(names):
        run.note(f"validation checked the first {len(names)} of "
                 f"{len(run.welcome.functions)} functions (--max-functions)")
    for name in names:
        shape = await _learn(run, name, unknown)
        if shape is None:
            continue
        confused = shape.confused_value()
        if confused is not None:
            outcome = await run.wire.call(name, confused)
            run.inspect(outcome)
            if outcome.has_result:
                run.find("validation", "high", "values of the wrong type are coerced (the "
                         "function ran with them)", outcome.sent, outcome.received())
    if names:
        await _check_json(run, names[0], unknown)


def _raw_call(request_id: int, method: str, params_text: str) -> str:
    return (f'{{"jsonrpc":"2.0","id":{request_id},"method":{json.dumps(method)},'
            f'"params":{params_text}}}')


async def _check_json(run: Run, name: str, unknown: str) -> None:
    key = json.dumps(unknown)
    cases: list[tuple[str, str, Severity]] = [
        (f"{{{key}:NaN}}", "NaN", "medium"),
        (f"{{{key}:Infinity}}", "Infinity", "medium"),
        (f"{{{key}:1e400}}", "a number beyond the double range", "medium"),
        (f"{{{key}:9007199254740993}}", "an integer beyond 2^53 (unsafe in JavaScript)", "low"),
        (f'{{{key}:1,{key}:2}}', "duplicate object keys", "low"),
        (f'{{{key}:"\\ud800"}}', "a lone UTF-16 surrogate", "low"),
        (f"{{{key}:{'[' * NESTING_DEPTH}{']' * NESTING_DEPTH}}}",
         f"values nested {NESTING_DEPTH} deep", "medium"),
        (f"{{{key}:[{','.join(['0'] * COLLECTION_ITEMS)}]}}",
         f"an array of {COLLECTION_ITEMS} items", "low"),
    ]
    for params_text, what, severity in cases:
        request_id = run.wire.next_id()
        outcome = await run.wire.exchange(_raw_call(request_id, name, params_text), request_id)
        run.inspect(outcome)
        if outcome.has_result or (outcome.reply is not None
                                  and outcome.error_code not in PARSE_REFUSALS):
            run.find("validation", severity, f"the parser accepts {what}",
                     outcome.sent, outcome.received())


# Frames and bursts -----------------------------------------------------------------------


async def check_frame_size(run: Run) -> None:
    await run.wire.close()
    ws = await run.wire.open_raw()
    extensions = ws.response.headers.get("Sec-WebSocket-Extensions") if ws.response else None
    await run.wire.close()
    if extensions and "permessage-deflate" in extensions:
        run.find("frame-size", "low", "permessage-deflate is accepted: a small compressed "
                 "frame can inflate to many times its size", "Sec-WebSocket-Extensions: "
                 "permessage-deflate (offered)", f"Sec-WebSocket-Extensions: {extensions}")
    await run.wire.ensure_open()
    size = run.options.frame_bytes
    request_id = run.wire.next_id()
    head = f'{{"jsonrpc":"2.0","id":{request_id},"method":"now.nowgateProbe","params":{{"pad":"'
    pad = secrets.token_hex(size // 2 + 1)[: max(size - len(head) - 3, 0)]
    frame = f'{head}{pad}"}}}}'
    outcome = await run.wire.exchange(frame, request_id)
    await run.wire.close()
    shown = f"one text frame of {len(frame)} bytes"
    if outcome.reply is not None:
        run.find("frame-size", "medium", f"a frame of {len(frame)} bytes is read in full and "
                 "answered (no frame-size limit below it)", shown, outcome.received())
    elif outcome.timed_out:
        run.note(f"a frame of {len(frame)} bytes got neither an answer nor a close in time")


async def check_rate_limit(run: Run) -> None:
    await run.wire.close()
    welcome = await run.wire.ensure_open()
    method = "nowgateProbeBurst"
    if run.options.allow_valid_calls:
        # A function whose only answer to no arguments is a result takes none: calling it
        # with none is a valid call, allowed here by the operator.
        for name in welcome.functions:
            outcome = await run.wire.call(name, [])
            if outcome.has_result:
                method = name
                break
    count = run.options.burst
    frames = [json.dumps({"jsonrpc": "2.0", "id": run.wire.next_id(), "method": method,
                          "params": []}) for _ in range(count)]
    answers, ended = await run.wire.burst(frames)
    await run.wire.close()
    limited = any(isinstance(a.get("error"), dict) and a["error"].get("code") == -32029
                  for a in answers)
    if limited or (ended is not None and ended.closed):
        return
    if ended is not None and ended.timed_out:
        run.note(f"a burst of {count} calls got {len(answers)} answers and no close in time")
        return
    run.find("rate-limit", "medium", f"a burst of {count} calls on one connection is answered "
             "in full: no rate limit and no violation budget", f"{count} x {frames[0]}",
             f"{len(answers)} answers, none -32029, connection still open")
