"""Who may connect and who a client is: origins, identity fields, tokens.

- origin: cross-site, `null`, look-alike (prefix, suffix) and scheme-swapped origins must be
  refused at the handshake; a handshake without Origin is noted (development accepts it).
- identity: `now.set` on identity fields and on undeclared variables must be refused, and a
  hello that claims a client id or roles must not get them.
- token: a valid token resumes its identity (checked first, so the rest means something);
  altered, truncated, re-signed-looking and unsigned tokens must never resume it.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import urlsplit

from .context import Run
from .findings import Severity
from .wire import Outcome, Refused, Welcome

CROSS_SITE_ORIGIN = "https://nowgate-probe.invalid"
IDENTITY_FIELDS = ("client_id", "uuid", "clientId", "user", "roles", "groups", "token")
FORGED_CLIENT_ID = "c-nowgateprobe"
# A closed identity is released by the server shortly after the close; resuming waits for it.
RELEASE_WAIT = 0.3


def look_alike_origins(origin: str) -> list[tuple[str, str]]:
    """(origin, what it tests) for an allowed origin: prefix, suffix and scheme confusions."""
    parts = urlsplit(origin)
    swapped = "http" if parts.scheme == "https" else "https"
    return [
        (f"{origin}.nowgate-probe.invalid", "an origin that starts with the allowed one"),
        (f"{parts.scheme}://nowgateprobe{parts.netloc}",
         "an origin that ends with the allowed one"),
        (f"{swapped}://{parts.netloc}", "the allowed host with the other scheme"),
    ]


async def check_origin(run: Run) -> None:
    own = run.options.origin
    attempts: list[tuple[str, str, Severity]] = [(CROSS_SITE_ORIGIN, "a cross-site origin", "high"),
                ("null", "the null origin (sandboxed frames, file: pages)", "high")]
    if own:
        attempts += [(o, what, "medium") for o, what in look_alike_origins(own)]
    for origin, what, severity in attempts:
        sent = f"WebSocket handshake with Origin: {origin}"
        try:
            await run.wire.open_raw(origin)
        except Refused as refused:
            if refused.status is None:
                run.note(f"handshake with Origin {origin}: {refused}")
            continue
        finally:
            await run.wire.close()
        run.find("origin", severity, f"the handshake is accepted from {what}", sent,
                 "101 Switching Protocols")
    try:
        await run.wire.open_raw(None)
        run.note("a handshake without Origin is accepted (the development default; "
                 "production refuses it)")
    except Refused as refused:
        run.note(f"a handshake without Origin is refused ({refused})")
    finally:
        await run.wire.close()


async def check_identity(run: Run) -> None:
    for scope, path in [*(("client", name) for name in IDENTITY_FIELDS),
                        ("everyone", "nowgateProbe")]:
        params = {"scope": scope, "path": path, "value": FORGED_CLIENT_ID}
        outcome = await run.wire.call("now.set", params)
        run.inspect(outcome)
        if outcome.has_result:
            if path in IDENTITY_FIELDS:
                run.find("identity", "high", "a client can write its own identity fields",
                         outcome.sent, outcome.received())
            else:
                run.find("identity", "medium", "a client can write an undeclared variable",
                         outcome.sent, outcome.received())
    await run.wire.close()
    outcome = await _open(run, client_id=FORGED_CLIENT_ID, roles=["admin"], groups=["admin"])
    welcome = run.wire.welcome
    await run.wire.close()
    if welcome is None:
        return
    adopted = [name for name, value in (("client_id", welcome.client_id == FORGED_CLIENT_ID),
                                        ("roles", "admin" in (welcome.raw.get("roles") or [])))
               if value]
    if adopted:
        run.find("identity", "high", "the hello's own claims are believed: " + ", ".join(adopted),
                 outcome.sent, outcome.received())


async def _open(run: Run, token: str | None = None, **extra: Any) -> Outcome:
    try:
        return await run.wire.open(token=token, **extra)
    except Refused as refused:
        return Outcome(sent="handshake", close_reason=str(refused), close_code=None)


async def _resume(run: Run, token: str) -> Welcome | None:
    """The welcome a token gets; waits briefly for the server to release its identity."""
    welcome = None
    for _ in range(3):
        await asyncio.sleep(RELEASE_WAIT)
        await _open(run, token)
        welcome = run.wire.welcome
        await run.wire.close()
        if welcome is None or welcome.resumed:
            return welcome
    return welcome


def forgeries(token: str, client_id: str) -> list[tuple[str, str]]:
    """(token, what it is) made from a real token without the key."""
    def flip(char: str) -> str:
        return "A" if char != "A" else "B"

    # The signature's first character, not its last: the last base64 character may carry
    # padding bits only, and changing those changes nothing (the same token, spelled anew).
    cut = token.rfind(".") + 1
    if not 0 < cut < len(token):
        cut = len(token) // 2
    made = [
        (token[:cut] + flip(token[cut]) + token[cut + 1:], "a character of the signature "
         "changed"),
        (flip(token[0]) + token[1:], "the payload's first character changed"),
        (token + "x", "a character appended"),
        (token.rsplit(".", 1)[0] if "." in token else token[:-4], "the signature cut off"),
        (client_id, "the client id itself"),
        (_unsigned_jwt(client_id), "an unsigned (alg none) token naming the client id"),
    ]
    parts = token.split(".")
    if len(parts) == 3:  # payload.timestamp.signature: an expired-looking or altered stamp
        made.append((f"{parts[0]}.{flip(parts[1][0])}{parts[1][1:]}.{parts[2]}",
                     "the timestamp changed"))
    return [(forged, what) for forged, what in made if forged and forged != token]


def _unsigned_jwt(client_id: str) -> str:
    def b64(data: dict[str, object]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'cid': client_id, 'sub': client_id})}."


async def check_tokens(run: Run) -> None:
    await run.wire.close()
    await _open(run)
    first = run.wire.welcome
    await run.wire.close()
    if first is None:
        run.note("token checks skipped: no welcome")
        return
    resumed = await _resume(run, first.token)
    if resumed is None or not resumed.resumed or resumed.client_id != first.client_id:
        run.note("a valid token did not resume its identity; forged tokens were still tried")
    victim = first.client_id if resumed is None else resumed.client_id
    for forged, what in forgeries(first.token, victim):
        await asyncio.sleep(RELEASE_WAIT)
        outcome = await _open(run, forged)
        welcome = run.wire.welcome
        await run.wire.close()
        run.inspect(outcome)
        if welcome is not None and welcome.client_id == victim:
            run.find("token", "high", f"a forged token resumes the identity ({what})",
                     outcome.sent, outcome.received())
