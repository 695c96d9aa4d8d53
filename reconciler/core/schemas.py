"""JSON Schemas of ``pipeline.yaml`` and ``fastflow.yaml``, generated from the models.

``schemas/*.schema.json`` are written by ``scripts/gen-schemas`` and a test fails when they drift,
so editors (``# yaml-language-server: $schema=...``) always validate what the loader accepts.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.model.specs import PipelineSpec, RepoConfig

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def pipeline_schema() -> dict[str, Any]:
    schema = PipelineSpec.model_json_schema(mode="validation")
    return {"$schema": DRAFT, "title": "Fast-Flow pipeline.yaml", **schema}


def fastflow_schema() -> dict[str, Any]:
    schema = RepoConfig.model_json_schema(mode="validation")
    defs = schema.setdefault("$defs", {})
    pipeline = PipelineSpec.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    defs.update(pipeline.pop("$defs", {}))
    defs["PipelineSpec"] = pipeline
    schema["properties"]["defaults"] = {
        "$ref": "#/$defs/PipelineSpec",
        "description": "any pipeline.yaml field, applied to every pipeline",
    }
    return {"$schema": DRAFT, "title": "Fast-Flow fastflow.yaml", **schema}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


SCHEMA_FILES = {"pipeline.schema.json": pipeline_schema, "fastflow.schema.json": fastflow_schema}
