"""The table of docs/invalid-specs.md as data, shared by the unit and e2e suites."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TABLE = Path(__file__).resolve().parents[3] / "docs" / "invalid-specs.md"
_ROW = re.compile(r"^\| (\d+) \| `(\{.*\})`(.*?) \| ([^|]+) \| (.+?) \| (.+?) \|$")


@dataclass(frozen=True)
class InvalidSpec:
    number: int
    patch: dict[str, Any]
    caught_by: str
    server_says: str
    local_says: str

    @property
    def on_update(self) -> bool:
        return self.caught_by == "CEL on update"

    @property
    def run_name(self) -> str | None:
        """The run's name a `{"metadata": {"name": ...}}` row gives; None for spec rows."""
        name = self.patch.get("metadata", {}).get("name")
        return None if name is None else str(name)

    @property
    def spec_patch(self) -> dict[str, Any]:
        return {key: value for key, value in self.patch.items() if key != "metadata"}


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


def invalid_specs() -> list[InvalidSpec]:
    rows = []
    for line in TABLE.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            number, patch, _, caught_by, server, local = match.groups()
            rows.append(
                InvalidSpec(
                    int(number),
                    json.loads(patch),
                    caught_by.strip(),
                    server.strip().strip("`"),
                    local.strip().strip("`"),
                )
            )
    return rows
