"""The probe's result for people (Markdown); `ProbeResult.as_dict()` is the JSON form."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from .findings import SEVERITIES, ProbeResult, quote


def result_schema() -> dict[str, Any]:
    """The JSON Schema of `ProbeResult.as_dict()` (package data)."""
    text = resources.files("nowgate").joinpath("schemas/probe.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def render_text(result: ProbeResult) -> str:
    found = result.findings
    lines = [f"# nowgate probe of {result.target}", ""]
    verdict = f"{len(found)} finding(s)" if found else "nothing found"
    lines.append(
        f"{verdict}; checks run: {', '.join(result.checks) or 'none'}; "
        f"{result.requests} requests on {result.connections} connections in "
        f"{result.seconds:.1f} s."
    )
    if result.stopped:
        lines += ["", f"**Stopped early**: {result.stopped}."]
    ordered = sorted(found, key=lambda f: (SEVERITIES.index(f.severity), f.category))
    for number, finding in enumerate(ordered, 1):
        lines += [
            "",
            f"## {number}. [{finding.severity}] {finding.category}: {finding.title}",
            "",
            f"- sent: `{quote(finding.sent)}`",
            f"- received: `{quote(finding.received)}`",
        ]
        if result.count(finding) > 1:
            lines.append(f"- seen {result.count(finding)} times; this is the first")
    if result.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"
