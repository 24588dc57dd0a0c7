"""The probe stays light: it imports the standard library, websockets and httpx, and its own
modules, nothing of the server stack (FastAPI, Starlette, uvicorn, pydantic, the gateway):
checked in its source, and by importing it in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nowgate.probe

PROBE = Path(nowgate.probe.__file__).parent
ALLOWED = {"websockets", "httpx"}


def imported_packages(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            # Relative imports must stay inside the probe package (level 1: a sibling module).
            found.add("." * node.level if node.level > 1 else
                      "" if node.level == 1 else (node.module or "").split(".")[0])
    return found - {""}


def test_the_probe_imports_nothing_of_the_server_stack() -> None:
    modules = sorted(PROBE.glob("*.py"))
    assert len(modules) >= 5
    for module in modules:
        outside = {name for name in imported_packages(module)
                   if name not in ALLOWED and name not in sys.stdlib_module_names}
        assert outside == set(), f"{module.name} imports {outside}"


def test_importing_the_probe_starts_no_server_code() -> None:
    heavy = ("fastapi", "uvicorn", "starlette", "pydantic", "nowgate.application")
    completed = subprocess.run(
        [sys.executable, "-c",
         "import sys, nowgate.probe, nowgate.probe.render\n"
         f"print([m for m in {heavy!r} if m in sys.modules])"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert completed.stdout.strip() == "[]", completed.stdout + completed.stderr
