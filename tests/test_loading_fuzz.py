"""Loading never crashes on user input: arbitrary bytes, YAML-ish text, and structured garbage."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.loading import ConfigSource, Loader
from reconciler.core.sources import FileEntry, PipelineSource, SharedFile, SharedSource
from reconciler.model.desired import DesiredState

FIELDS = [
    "description",
    "entrypoint",
    "args",
    "python",
    "schedules",
    "on_push",
    "after",
    "concurrency",
    "missed",
    "timeout",
    "retries",
    "resources",
    "network",
    "env",
    "secrets",
    "suspend",
    "cron",
    "every",
]


def load_bytes(pipeline_yaml: bytes, config: bytes | None = None) -> DesiredState:
    files = (FileEntry("pipeline.yaml", len(pipeline_yaml)), FileEntry("main.py", 0))
    source = PipelineSource("p", "tree-1", files, {"pipeline.yaml": pipeline_yaml})
    return Loader().load(
        {"p": "tree-1"}, lambda name, tree: source, ConfigSource(config, "cfg", len(config or b""))
    )


def assert_well_formed(state: DesiredState) -> None:
    assert set(state.pipelines) | set(state.invalid) == {"p"}
    for problem in state.problems:
        assert problem.line >= 1 and problem.col >= 1
        assert str(problem).startswith(f"{problem.path}:{problem.line}:{problem.col}: ")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_as_pipeline_yaml_never_raise(raw: bytes) -> None:
    assert_well_formed(load_bytes(raw))


yaml_text = st.lists(
    st.sampled_from(list("abcdeon:-[]{}&*!|>'\"#%@`, \n\t0123456789.") + FIELDS), max_size=80
).map("".join)


@settings(max_examples=400, deadline=None)
@given(yaml_text, st.one_of(st.none(), yaml_text.map(str.encode)))
def test_yaml_like_text_never_raises(text: str, config: bytes | None) -> None:
    assert_well_formed(load_bytes(text.encode(), config))


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), values, max_size=6))
def test_structured_garbage_is_reported_not_raised(document: dict[str, Any]) -> None:
    state = load_bytes(yaml.safe_dump(document).encode())
    assert_well_formed(state)


secret_text = st.lists(
    st.sampled_from(list("ABC_xyz:-[]{}&*!|'\" \n\t0123456789") + ["sops:", "gAAAAA", "DSN"]),
    max_size=60,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        ["secrets/db.sops.yaml", "secrets/db.fernet.yaml", "secrets/Bad Name.fernet.yaml"]
    ),
    st.one_of(st.binary(max_size=200), secret_text.map(str.encode)),
    st.lists(st.sampled_from(["DSN", "ABC", "x-y", "sops"]), max_size=3),
)
def test_arbitrary_shared_secret_files_never_raise(path: str, raw: bytes, asked: list[str]) -> None:
    spec = yaml.safe_dump({"secrets": asked}).encode()
    files = (FileEntry("pipeline.yaml", len(spec)), FileEntry("main.py", 0))
    source = PipelineSource("p", "tree-1", files, {"pipeline.yaml": spec})
    shared = SharedSource("shared-1", (SharedFile(path, len(raw), raw),))
    state = Loader().load({"p": "tree-1"}, lambda name, tree: source, shared=shared)
    assert set(state.pipelines) | set(state.invalid) == {"p"}
    for problem in state.problems:
        assert str(problem).startswith(f"{problem.path}:{problem.line}:{problem.col}: ")
        assert problem.path in (path, "pipelines/p/pipeline.yaml")
