"""`nowgate probe` sees every category of weakness: a category it misses is a failing test.

Two kinds of weak targets: a naive server written the way many are (tests/support/
naive_server.py: any origin, getattr dispatch, lax parsing and validation, echoed exceptions,
unsigned tokens, writable identity, no limits, `../` served, no headers), and nowgate itself
with its controls switched off (tests/support/weakened.py: code controls patched out in the
gateway process, limit controls set loose). The clean-gateway tests
(test_probe_clean.py) show the same checks find nothing while the controls are on.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from nowgate.probe import CATEGORIES, ProbeResult
from tests.support.gateway import REPO, Gateway
from tests.support.naive_server import NaiveServer
from tests.support.weakened import LOOSE_LIMITS, SWITCHES
from tests.tools.probing import described, probe, probe_command

WRITABLE_IDENTITY = REPO / "tests" / "fixtures" / "writable_identity.toml"


@pytest.fixture(scope="module")
def naive_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NaiveServer]:
    root = tmp_path_factory.mktemp("site") / "a" / "b"
    root.mkdir(parents=True)
    (root / "index.html").write_text("<h1>site</h1>")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n\trepositoryformatversion = 0\n")
    server = NaiveServer(root)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def naive_result(naive_server: NaiveServer) -> ProbeResult:
    return asyncio.run(probe(naive_server.url))


@pytest.fixture(scope="module")
def weakened_result() -> ProbeResult:
    def weakened(host: str, port: int) -> list[str]:
        return [sys.executable, "-m", "tests.support.weakened", ",".join(SWITCHES), "serve",
                "--policy", str(WRITABLE_IDENTITY), "--host", host, "--port", str(port)]

    gateway = Gateway(WRITABLE_IDENTITY, env=LOOSE_LIMITS, command=weakened)
    with gateway:
        return asyncio.run(probe(gateway.base_url))


def categories(result: ProbeResult) -> set[str]:
    return {finding.category for finding in result.findings}


@pytest.mark.parametrize("category", CATEGORIES)
def test_the_naive_server_is_caught_in_every_category(
    naive_result: ProbeResult, category: str
) -> None:
    assert category in categories(naive_result), described(naive_result)
    assert naive_result.exit_code == 1


@pytest.mark.parametrize("category", CATEGORIES)
def test_nowgate_with_its_controls_off_is_caught_in_every_category(
    weakened_result: ProbeResult, category: str
) -> None:
    assert category in categories(weakened_result), described(weakened_result)


def titles(result: ProbeResult) -> set[str]:
    return {f"{finding.category}: {finding.title}" for finding in result.findings}


def test_findings_say_what_was_sent_and_what_came_back(naive_result: ProbeResult) -> None:
    found = {f"{f.category}: {f.title}": f for f in naive_result.findings}
    coerced = found["validation: values of the wrong type are coerced (the function ran with them)"]
    assert '"a": "1"' in coerced.sent and '"result": 2' in coerced.received
    passwd = found["traversal: a path climbs out of the static root (/etc/passwd served)"]
    assert passwd.sent.startswith("GET /") and "root:" in passwd.received
    assert "traversal: a dotfile is served (/.git/config)" in found
    assert "identity: the hello's own claims are believed: client_id, roles" in found
    burst = found["rate-limit: a burst of 250 calls on one connection is answered in full: "
                  "no rate limit and no violation budget"]
    assert burst.severity == "medium"
    assert {"validation: the parser accepts NaN",
            "validation: the parser accepts duplicate object keys",
            "validation: the parser accepts values nested 64 deep",
            "frame-size: permessage-deflate is accepted: a small compressed frame can inflate "
            "to many times its size",
            "information-leak: an error answer gives away a traceback",
            "information-leak: an error answer gives away the probe's own input, echoed back",
            } <= set(found)


def test_the_probe_holds_one_connection_at_a_time(
    naive_server: NaiveServer, naive_result: ProbeResult
) -> None:
    assert naive_result.connections > 10  # it did open many, one after the other
    assert naive_server.most_sockets_at_once() == 1


def test_the_command_exits_1_on_findings(naive_server: NaiveServer) -> None:
    status, document = probe_command(naive_server.url, "--skip", "rate-limit",
                                     "--skip", "frame-size")
    assert status == 1 and document["exit_code"] == 1
    assert {f["category"] for f in document["findings"]} == set(CATEGORIES) - {
        "rate-limit", "frame-size"}
    assert "rate-limit" not in document["checks"]


def test_the_shipped_schema_names_every_category() -> None:
    from nowgate.probe.render import result_schema

    assert tuple(result_schema()["$defs"]["category"]["enum"]) == CATEGORIES
