"""The JSON Schemas in schemas/ match the models (regenerate with scripts/gen-schemas)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.core.schemas import SCHEMA_FILES, render

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_committed_schema_matches_the_models(name: str) -> None:
    committed = (ROOT / "schemas" / name).read_text()
    assert committed == render(SCHEMA_FILES[name]()), (
        f"schemas/{name} drifted: run scripts/gen-schemas"
    )


def test_pipeline_schema_rejects_unknown_keys_and_accepts_both_after_forms() -> None:
    schema = json.loads((ROOT / "schemas" / "pipeline.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert {"type": "string"} in schema["properties"]["after"]["items"]["anyOf"]
