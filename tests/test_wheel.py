"""The wheel on its own: built from the checkout, installed into a fresh venv, used from a
project that has its own `app` package (the usual FastAPI layout).

Nothing resolves through the working tree: the sources are copied out before the build, and
everything runs from the project's directory with the venv's interpreter and scripts.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nowgate.client import connect
from tests.support.gateway import REPO, Gateway

pytestmark = pytest.mark.wheel

HANDLERS = '''\
"""The team's own handlers, in the team's own `app` package."""
from typing import Annotated

from pydantic import Field

from nowgate import Context

Text = Annotated[str, Field(max_length=100)]


async def add(a: int, b: int) -> int:
    return a + b


async def shout(ctx: Context, text: Text) -> int:
    return ctx.others.notify("message", text)


def message(text: str) -> None: ...
'''

POLICY = '''\
handlers = "app.handlers"

[functions.add]
[functions.shout]

[client_functions.message]
'''


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("NOWGATE_", "PYTHON"))}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the venv's bin directory, the user's project directory)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    built = run([str(bin_dir / "pip"), "wheel", "--no-deps", "-q", "-w", str(root / "dist"),
                 str(source)], root)
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("nowgate-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.namelist()
    for name in ("nowgate/py.typed", "nowgate/nowjs/now.js", "nowgate/__main__.py"):
        assert name in shipped
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in shipped)
    # Only the library: the service (app/), the demo page and the tests stay out.
    metadata = wheel.name.split("-py3")[0] + ".dist-info"
    assert {name.split("/")[0] for name in shipped} == {"nowgate", metadata}
    pins = str(REPO / "requirements" / "pins.txt")
    install = run([str(bin_dir / "pip"), "install", "-q", "-c", pins, str(wheel)], root)
    assert install.returncode == 0, install.stderr

    project = root / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "__init__.py").write_text('"""The team\'s own package."""\n')
    (project / "app" / "handlers.py").write_text(HANDLERS)
    (project / "policy.toml").write_text(POLICY)
    yield bin_dir, project


def test_nowgate_and_the_users_own_app_package_coexist(installed: tuple[Path, Path]) -> None:
    bin_dir, project = installed
    result = run([str(bin_dir / "python"), "-c",
                  "import nowgate, app.handlers; print(nowgate.__file__); print(app.__file__)"],
                 project)
    assert result.returncode == 0, result.stderr
    nowgate_file, app_file = result.stdout.split()
    assert Path(nowgate_file).is_relative_to(bin_dir.parent)  # from site-packages
    assert Path(app_file).is_relative_to(project)


def test_the_console_script_and_python_m_check_the_users_policy(
    installed: tuple[Path, Path],
) -> None:
    bin_dir, project = installed
    for command in ([str(bin_dir / "nowgate")], [str(bin_dir / "python"), "-m", "nowgate"]):
        result = run([*command, "check", "policy.toml"], project)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == (
            "policy.toml: ok (2 functions, 1 client functions, 0 client-writable variables)"
        )


async def test_nowgate_serve_serves_the_client_a_call_and_a_broadcast(
    installed: tuple[Path, Path],
) -> None:
    bin_dir, project = installed

    def serve(host: str, port: int) -> list[str]:
        return [str(bin_dir / "nowgate"), "serve", "--policy", "policy.toml",
                "--host", host, "--port", str(port)]

    gateway = Gateway(command=serve, cwd=project)
    del gateway.env["NOWGATE_STATIC_DIR"]  # the installed package alone
    with gateway:
        async with httpx.AsyncClient(base_url=gateway.base_url) as http:
            client = await http.get("/nowjs/now.js")
        assert client.status_code == 200
        assert client.text == (REPO / "src" / "nowgate" / "nowjs" / "now.js").read_text()
        async with connect(gateway.ws_url) as caller, connect(gateway.ws_url) as listener:
            heard: asyncio.Queue[Any] = asyncio.Queue()
            listener.on("message", heard.put_nowait)
            assert await caller.call("add", 2, 3) == 5
            assert await caller.call("shout", "hello") == 1
            assert await asyncio.wait_for(heard.get(), 5) == "hello"
