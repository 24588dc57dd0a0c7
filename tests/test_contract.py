"""`nowgate types`: a policy's `now` as TypeScript declarations (checked by a real `tsc
--strict`) and as OpenRPC.

TypeScript comes from the npm registry into a temporary folder, once per test session
(no lock file in the repository).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from nowgate.__main__ import main
from nowgate.contract import load_contract, typescript
from tests.conftest import CHAT_POLICY
from tests.support.gateway import DEMO_POLICY, REPO

NOWJS = REPO / "src" / "nowgate" / "nowjs"

GOOD_PAGE = """\
import { connect, NowError } from './now.mjs';
import type { Contract, Position } from './contract.js';

const now = connect<Contract>({ url: '/ws' });
now.updatePosition = (position: Position) => { console.log(position.left + position.top); };
now.on('connect', (info) => { if (info.recovered === false) console.log(now.vars.everyone); });

async function drag(): Promise<boolean> {
  const grant = await now.grab();
  const holder: string | null = grant.holder;
  console.log(holder, grant.position?.left);  // null: a holder on another node
  const moved: boolean = await now.syncPosition({ left: 10, top: 20 });
  await now.call('syncPosition', { left: 11, top: 21 });
  const nothing: null = await now.release();
  return moved && nothing === null;
}
drag().catch((error: unknown) => { if (error instanceof NowError) console.log(error.code); });
"""

WRONG_PAGES = {
    # A string where the handler takes a Position.
    "whole": ("now.syncPosition('10,20');", "not assignable to parameter of type 'Position'"),
    # A field of the wrong type inside the Position: the error points at `left`.
    "field": ("now.syncPosition({ left: '10px', top: 20 });", "(5,20): error TS2322"),
    # A function the policy does not declare.
    "unknown": ("now.teleport(1, 2);", "Property 'teleport' does not exist"),
    # A client function that answers the wrong type (the server validates `-> None`).
    "answer": ("now.updatePosition = (p: { left: number; top: number }) => 'done';",
               "not assignable to type 'void | Promise<void>'"),
}


@pytest.fixture(scope="session")
def tsc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed (scripts/test installs nodejs)"
    folder = tmp_path_factory.mktemp("typescript")
    subprocess.run(
        [npm, "install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund",
         "typescript@5"],
        cwd=folder, check=True, capture_output=True, timeout=600,
    )
    return folder / "node_modules" / ".bin" / "tsc"


def compile_page(tsc: Path, folder: Path, page: str) -> subprocess.CompletedProcess[str]:
    for name in ("now.mjs", "now.d.ts", "now.d.mts"):
        shutil.copy(NOWJS / name, folder / name)
    assert main(["types", str(DEMO_POLICY), "-o", str(folder / "contract.ts")]) == 0
    (folder / "page.ts").write_text(page, encoding="utf-8")
    return subprocess.run(
        [str(tsc), "--strict", "--noEmit", "--pretty", "false", "--target", "es2022",
         "--module", "nodenext", "--moduleResolution", "nodenext", "page.ts"],
        cwd=folder, capture_output=True, text=True, timeout=300, check=False,
    )


def test_a_correct_page_compiles_against_the_demo_declarations(
    tsc: Path, tmp_path: Path
) -> None:
    result = compile_page(tsc, tmp_path, GOOD_PAGE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", sorted(WRONG_PAGES))
def test_a_wrong_page_fails_to_compile_naming_the_mistake(
    tsc: Path, tmp_path: Path, case: str
) -> None:
    line, expected = WRONG_PAGES[case]
    head = "\n".join(GOOD_PAGE.splitlines()[:4])  # imports and `const now`, then the mistake
    result = compile_page(tsc, tmp_path, f"{head}\n{line}\n")
    assert result.returncode != 0
    assert expected in result.stdout, result.stdout


def test_declarations_follow_the_handlers_annotations() -> None:
    demo = typescript(load_contract(DEMO_POLICY))
    assert "syncPosition(position: Position): boolean;" in demo
    assert "updatePosition(position: Position): void;" in demo
    assert "export type Position = {\n  left: number;\n  top: number;\n};" in demo  # closed
    chat = typescript(load_contract(CHAT_POLICY))
    assert "add(a: number, b?: number): number;" in chat  # a default makes it optional
    assert "answer(question: string): string;" in chat
    assert "client: { nickname?: string; readonly [name: string]: unknown };" in chat


def test_openrpc_describes_the_same_contract(tmp_path: Path) -> None:
    out, spec = tmp_path / "demo.ts", tmp_path / "demo.openrpc.json"
    assert main(["types", str(DEMO_POLICY), "-o", str(out), "--openrpc", str(spec)]) == 0
    document = json.loads(spec.read_text(encoding="utf-8"))
    assert document["openrpc"].startswith("1.3")
    methods = {m["name"]: m for m in document["methods"]}
    assert set(methods) == {"grab", "syncPosition", "release"}
    (param,) = methods["syncPosition"]["params"]
    assert param["name"] == "position" and param["required"] is True
    assert param["schema"] == {"$ref": "#/components/schemas/Position"}
    position = document["components"]["schemas"]["Position"]
    assert position["additionalProperties"] is False
    assert position["properties"]["left"]["maximum"] == 10_000
    assert methods["release"]["result"]["schema"] == {"type": "null"}
    assert [m["name"] for m in document["x-client-methods"]] == ["updatePosition"]


def test_a_broken_policy_is_refused_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "bad.toml"
    policy.write_text('handlers = "app.demo"\n[functions.nothere]\n', encoding="utf-8")
    assert main(["types", str(policy)]) == 2
    assert "cannot describe the policy" in capsys.readouterr().err
