"""SecurityHeadersMiddleware on its own, around tiny hand-written ASGI apps."""

from __future__ import annotations

from typing import Any

from nowgate.headers import SECURITY_HEADERS, SecurityHeadersMiddleware

Message = dict[str, Any]


def inner_app(*messages: Message) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)

    return app


async def run(app: Any, scope_type: str = "http") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": scope_type, "path": "/", "headers": []}, receive, send)
    return sent


START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain")],
}
BODY = {"type": "http.response.body", "body": b"hi"}


def test_the_exported_header_list() -> None:
    assert dict(SECURITY_HEADERS) == {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }


async def test_adds_every_header_as_lower_case_bytes() -> None:
    start, body = await run(SecurityHeadersMiddleware(inner_app(START, BODY)))
    assert start["status"] == 200
    expected = [(n.lower().encode(), v.encode()) for n, v in SECURITY_HEADERS]
    assert start["headers"] == [(b"content-type", b"text/plain"), *expected]
    assert body == BODY


async def test_keeps_a_header_the_app_set_and_does_not_duplicate_it() -> None:
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"x-frame-options", b"SAMEORIGIN"), (b"Referrer-Policy", b"origin")],
    }
    sent_start, _ = await run(SecurityHeadersMiddleware(inner_app(start, BODY)))
    names = [name.lower() for name, _ in sent_start["headers"]]
    assert len(names) == len(set(names))
    headers = dict(sent_start["headers"])
    assert headers[b"x-frame-options"] == b"SAMEORIGIN"
    assert headers[b"Referrer-Policy"] == b"origin"
    assert headers[b"x-content-type-options"] == b"nosniff"


async def test_a_start_message_without_headers_gets_them() -> None:
    start = {"type": "http.response.start", "status": 204}
    sent_start, _ = await run(SecurityHeadersMiddleware(inner_app(start, BODY)))
    assert len(sent_start["headers"]) == len(SECURITY_HEADERS)


async def test_does_not_mutate_the_apps_message() -> None:
    headers = [(b"content-type", b"text/plain")]
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    await run(SecurityHeadersMiddleware(inner_app(start, BODY)))
    assert headers == [(b"content-type", b"text/plain")]
    assert start["headers"] is headers


async def test_websocket_scopes_pass_through_untouched() -> None:
    accept = {"type": "websocket.accept", "headers": [(b"x-a", b"1")]}
    close = {"type": "websocket.close", "code": 1000}
    sent = await run(SecurityHeadersMiddleware(inner_app(accept, close)), "websocket")
    assert sent == [accept, close]
    assert accept["headers"] == [(b"x-a", b"1")]


async def test_websocket_denial_responses_are_not_rewritten() -> None:
    denial = {"type": "websocket.http.response.start", "status": 403, "headers": []}
    sent = await run(SecurityHeadersMiddleware(inner_app(denial)), "websocket")
    assert sent == [{"type": "websocket.http.response.start", "status": 403, "headers": []}]
