"""An incremental load equals a fresh one: whatever sequence of commits one ``Loader`` sees (names
added, removed, changed, broken, fixed, `after:` cycles made and broken, ``fastflow.yaml`` and
``secrets/`` changing), each state is exactly what a new ``Loader`` builds from that commit."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.loading import ConfigSource, Loader
from reconciler.core.sources import FileEntry, PipelineSource, SharedFile, SharedSource
from reconciler.model.desired import DesiredState

FERNET = "gAAAAABmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZm"
# folder variants: tree id -> pipeline.yaml (None: a folder without one, i.e. not a pipeline)
VARIANTS: dict[str, str | None] = {
    "plain": "schedules: [{cron: '0 3 * * *'}]\n",
    "described": "description: another version\n",
    "broken": "timeout: never\n",
    "after-a": "after: [a]\n",
    "after-b": "after: [b]\n",
    "after-ghost": "after: [ghost]\n",
    "shared": "secrets: [DSN]\n",
    "not-a-pipeline": None,
}
NAMES = ["a", "b", "c", "d"]
CONFIGS = [ConfigSource(), ConfigSource(b"defaults:\n  timeout: 5m\n", "cfg-1", 24)]
SHARED = [
    SharedSource(),
    SharedSource(
        "shared-1", (SharedFile("secrets/db.fernet.yaml", 90, f"DSN: {FERNET}\n".encode()),)
    ),
]

commits = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(NAMES), st.sampled_from(sorted(VARIANTS)), max_size=4),
        st.sampled_from(range(len(CONFIGS))),
        st.sampled_from(range(len(SHARED))),
    ),
    min_size=1,
    max_size=8,
)


def read(name: str, tree_id: str) -> PipelineSource:
    variant = tree_id.split("@")[0]
    text = VARIANTS[variant]
    files = [FileEntry("main.py", 9)]
    blobs: dict[str, bytes] = {}
    if text is not None:
        files.append(FileEntry("pipeline.yaml", len(text)))
        blobs["pipeline.yaml"] = text.encode()
    return PipelineSource(name, tree_id, tuple(files), blobs)


def load(loader: Loader, listing: dict[str, str], config: int, shared: int) -> DesiredState:
    # tree ids are per (variant, name): the same folder content under two names is two trees here
    trees = {name: f"{variant}@{name}" for name, variant in listing.items()}
    return loader.load(trees, read, CONFIGS[config], shared=SHARED[shared], commit="c")


@settings(max_examples=300, deadline=None)
@given(commits)
def test_every_incremental_load_equals_a_fresh_load(
    history: list[tuple[dict[str, str], int, int]],
) -> None:
    reused = Loader()
    for listing, config, shared in history:
        incremental = load(reused, listing, config, shared)
        fresh = load(Loader(), listing, config, shared)
        assert incremental.model_dump() == fresh.model_dump()
        assert list(incremental.pipelines) == sorted(incremental.pipelines)
        assert list(incremental.invalid) == sorted(incremental.invalid)


def test_a_cycle_made_and_broken_across_loads() -> None:
    loader = Loader()
    state = load(loader, {"a": "after-b", "b": "plain"}, 0, 0)
    assert set(state.pipelines) == {"a", "b"} and not state.invalid
    state = load(loader, {"a": "after-b", "b": "after-a"}, 0, 0)
    assert set(state.invalid) == {"a", "b"} and not state.pipelines
    assert "cycle: a -> b -> a" in str(state.invalid["a"][0])
    state = load(loader, {"a": "after-b", "b": "described"}, 0, 0)
    assert set(state.pipelines) == {"a", "b"} and not state.invalid
    state = load(loader, {"a": "after-b"}, 0, 0)  # b removed: a's `after` now points nowhere
    assert "no pipeline named 'b'" in str(state.invalid["a"][0])


def test_caches_stay_bounded_when_only_the_context_changes() -> None:
    loader = Loader()
    listing = dict.fromkeys(NAMES, "plain")
    for version in range(40):  # fastflow.yaml edited 40 times, no pipeline changed
        config = ConfigSource(
            f"defaults:\n  timeout: {version + 1}m\n".encode(), f"cfg-{version}", 30
        )
        trees = {name: f"{variant}@{name}" for name, variant in listing.items()}
        state = loader.load(trees, read, config)
        assert state.pipelines["a"].spec.timeout.total_seconds() == (version + 1) * 60
    bound = 2 * len(NAMES) + 64
    assert len(loader._results) <= bound and len(loader._folders) <= bound
