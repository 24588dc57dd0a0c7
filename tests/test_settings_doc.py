"""The README's settings table is the operators' reference: it must list every setting."""

from __future__ import annotations

import re
from pathlib import Path

from nowgate.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_setting_with_its_description() -> None:
    rows = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^\| `NOWGATE_([A-Z_]+)` \| [^|]* \| (.*) \|$",
                                 README.read_text(encoding="utf-8"), re.MULTILINE)
    }
    fields = {name.upper(): field for name, field in Settings.model_fields.items()}
    assert set(rows) == set(fields)
    for name, field in fields.items():
        assert field.description is not None
        assert rows[name].startswith(field.description.split(";")[0]), name
