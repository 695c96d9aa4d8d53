"""Load a commit's desired state: ``fastflow.yaml`` + every ``pipelines/<name>/`` -> ``DesiredState``.

Pure: the adapter hands over the ``pipelines/`` listing (name -> tree id) and a ``read`` function
that is called only for tree ids this ``Loader`` has not seen, so loading a commit where one
pipeline changed costs one folder read and one YAML parse. Every problem is collected (never stop
at the first) with its ``path:line:col``; a pipeline with problems is quarantined in
``DesiredState.invalid`` while the others load.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from reconciler.core.checking import check_after_graph
from reconciler.core.explaining import explain, field_path
from reconciler.core.folders import Folder, inspect_folder
from reconciler.core.shared import SharedSecrets, inspect_shared
from reconciler.core.snapshots import DocsView, LoadResult, Snapshot
from reconciler.core.sources import (
    CONFIG_FILE,
    MAX_YAML_BYTES,
    PIPELINES_DIR,
    SPEC_FILE,
    ReadPipeline,
    SharedSource,
)
from reconciler.core.yamlread import Mark, Path, YamlDoc, YamlError, read_yaml
from reconciler.model.desired import DesiredState, Pipeline
from reconciler.model.problems import Problem
from reconciler.model.specs import NAME_PATTERN, PipelineSpec, RepoConfig, merge_defaults


@dataclass(frozen=True)
class ConfigSource:
    """``fastflow.yaml`` of a commit: its bytes (``None`` when absent) and blob id."""

    raw: bytes | None = None
    blob_id: str = ""
    size: int = 0


@dataclass
class _Config:
    config: RepoConfig
    doc: YamlDoc | None
    defaults: dict[str, Any]
    problems: list[Problem]


class Loader:
    """Loads desired states, remembering folders and specs by tree id.

    Loading is incremental: folders are parsed once per tree id, specs validated once per
    (tree id, ``fastflow.yaml``, ``secrets/``), and when those two are unchanged the next load
    starts from the previous one's results and touches only the names whose tree id changed, so
    one changed pipeline among 5,000 costs a few dictionary copies, not 5,000 Python steps.
    Caches keep the folders of the current and the previous listing (swept when they grow past
    twice the current one).
    """

    def __init__(self) -> None:
        self._folders: dict[str, Folder] = {}
        self._results: dict[tuple[str, str, str], LoadResult] = {}
        self._previous: tuple[Mapping[str, str], tuple[str, str]] = ({}, ("", ""))
        self._snapshot: Snapshot | None = None
        self._shared: tuple[str, SharedSecrets] = ("", SharedSecrets())

    def load(
        self,
        listing: Mapping[str, str],
        read: ReadPipeline,
        config: ConfigSource = ConfigSource(),
        *,
        shared: SharedSource | None = None,
        commit: str | None = None,
    ) -> DesiredState:
        shared = shared or SharedSource()
        cfg = load_config(config)
        secrets = self._shared_secrets(shared)
        context = (config.blob_id, shared.tree_id)

        def resolve(name: str, tree_id: str) -> LoadResult | None:
            folder = self._folder(name, tree_id, read)
            if not folder.is_pipeline:
                return None
            key = (tree_id, *context)
            found = self._results.get(key)
            if found is None:
                found = self._results[key] = _load_pipeline(name, tree_id, folder, cfg, secrets)
            return found

        listing = dict(listing)
        previous = self._snapshot
        if previous is not None and previous.context == context:
            snapshot = previous.updated(listing, resolve)
        else:
            snapshot = Snapshot(context, {}, {}, {}, {}, {}).updated(listing, resolve)
        self._snapshot = snapshot
        self._sweep(listing, context)
        return _assemble(commit, config.blob_id, cfg, secrets, snapshot)

    def _shared_secrets(self, source: SharedSource) -> SharedSecrets:
        if not source.tree_id:
            return SharedSecrets()
        if self._shared[0] != source.tree_id:
            self._shared = (source.tree_id, inspect_shared(source))
        return self._shared[1]

    def _folder(self, name: str, tree_id: str, read: ReadPipeline) -> Folder:
        folder = self._folders.get(tree_id)
        if folder is None:
            folder = self._folders[tree_id] = inspect_folder(read(name, tree_id))
        return folder

    def _sweep(self, listing: Mapping[str, str], context: tuple[str, str]) -> None:
        """Forget folders and specs of neither this load nor the previous one (tree ids, and the
        ``fastflow.yaml`` / ``secrets/`` context of a spec), but only once a cache has grown past
        twice this listing, so a load does not pay O(cache) and memory stays bounded."""
        (previous, previous_context), self._previous = self._previous, (listing, context)
        bound = 2 * len(listing) + 64
        if len(self._folders) <= bound and len(self._results) <= bound:
            return
        trees = set(listing.values()) | set(previous.values())
        contexts = {context, previous_context}
        for tree_id in [t for t in self._folders if t not in trees]:
            del self._folders[tree_id]
        for key in [k for k in self._results if k[0] not in trees or k[1:] not in contexts]:
            del self._results[key]


def load_config(source: ConfigSource) -> _Config:
    """Parse and validate ``fastflow.yaml``; problems carry ``pipeline=None`` (repo-wide)."""
    if source.raw is None:
        if source.size > MAX_YAML_BYTES:
            return _Config(RepoConfig(), None, {}, [_too_big(CONFIG_FILE, source.size)])
        return _Config(RepoConfig(), None, {}, [])
    try:
        doc = read_yaml(source.raw)
    except YamlError as exc:
        return _Config(RepoConfig(), None, {}, [_problem(CONFIG_FILE, exc.mark, exc.message, None)])
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        return _Config(
            RepoConfig(),
            None,
            {},
            [_problem(CONFIG_FILE, Mark(1, 1), "the top level must be a mapping", None)],
        )
    doc.data = data

    def locate(path: Path, on_key: bool) -> tuple[str, Mark]:
        return CONFIG_FILE, doc.locate(path, key=on_key)

    problems: list[Problem] = []
    try:
        config = RepoConfig.model_validate(data)
    except ValidationError as exc:
        problems += [_problem(f, m, t, None) for f, m, t in explain(exc, RepoConfig, locate)]
        config = RepoConfig()
    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    try:
        PipelineSpec.model_validate(defaults)
    except ValidationError as exc:
        problems += [
            _problem(f, m, f"defaults.{t}", None)
            for f, m, t in explain(exc, PipelineSpec, locate, ("defaults",))
        ]
    return _Config(config, doc, dict(defaults or {}), problems)


def _too_big(path: str, size: int) -> Problem:
    return Problem(path=path, message=f"file is {size} bytes, over the {MAX_YAML_BYTES} byte limit")


def _problem(path: str, mark: Mark, message: str, pipeline: str | None) -> Problem:
    return Problem(path=path, line=mark.line, col=mark.col, message=message, pipeline=pipeline)


def _load_pipeline(
    name: str, tree_id: str, folder: Folder, cfg: _Config, shared: SharedSecrets
) -> LoadResult:
    base = f"{PIPELINES_DIR}/{name}"
    spec_path = f"{base}/{SPEC_FILE}"
    problems = [_problem(f"{base}/{p}", m, t, name) for p, m, t in folder.problems]
    if not NAME_PATTERN.fullmatch(name):
        problems.append(
            _problem(
                spec_path,
                Mark(1, 1),
                f"pipeline name {name!r} must match {NAME_PATTERN.pattern}",
                name,
            )
        )
    doc = folder.doc
    if doc is None:
        if not any(p.path == spec_path for p in problems):  # too big or a symlink: said already
            problems.append(
                _problem(spec_path, Mark(1, 1), "pipeline.yaml could not be read", name)
            )
        return LoadResult(None, tuple(problems), None)

    def locate(path: Path, on_key: bool) -> tuple[str, Mark]:
        if path in doc.values or (on_key and path in doc.keys) or cfg.doc is None:
            return spec_path, doc.locate(path, key=on_key)
        default_path = ("defaults", *path)
        if default_path in cfg.doc.values or default_path in cfg.doc.keys:
            return CONFIG_FILE, cfg.doc.locate(default_path, key=on_key)
        return spec_path, doc.locate(path, key=on_key)

    merged = merge_defaults(cfg.defaults, doc.data)
    problems += _check_files(name, merged, folder, shared, locate)
    try:
        spec = PipelineSpec.model_validate(merged)
    except ValidationError as exc:
        for file, mark, text in explain(exc, PipelineSpec, locate):
            if file == CONFIG_FILE:  # the same problem load_config reports once for the repo
                problems.append(_problem(file, mark, f"defaults.{text}", None))
            else:
                problems.append(_problem(file, mark, text, name))
        return LoadResult(None, tuple(problems), doc)
    if problems:
        return LoadResult(None, tuple(problems), doc)
    pipeline = Pipeline(
        name=name,
        tree_id=tree_id,
        spec=spec,
        layout=folder.layout,
        secret_files=folder.secret_files,
        secret_digests=dict(folder.secret_digests),
        shared_secrets=_shared_grants(spec.secrets or [], folder, shared),
    )
    return LoadResult(pipeline, (), doc)


def _shared_grants(
    asked: list[str], folder: Folder, shared: SharedSecrets
) -> dict[str, tuple[str, str]]:
    """The shared secrets an (already checked) allow-list receives: own names win."""
    return {
        name: shared.names[name][0]
        for name in sorted(set(asked))
        if name not in folder.secret_digests and len(shared.names.get(name, ())) == 1
    }


def _check_files(
    name: str, merged: dict[str, Any], folder: Folder, shared: SharedSecrets, locate: Any
) -> list[Problem]:
    """Checks against the folder's files; on the raw mapping, so they run beside type errors."""
    found: list[tuple[Path, bool, str]] = []
    entrypoint = merged.get("entrypoint", "main.py")
    if isinstance(entrypoint, str) and entrypoint and ".." not in entrypoint.split("/"):
        if (
            not entrypoint.startswith("/")
            and folder.resolve(posixpath.normpath(entrypoint)) is None
        ):
            found.append(
                (
                    ("entrypoint",),
                    False,
                    f"entrypoint: file {entrypoint!r} not found in the pipeline folder",
                )
            )
    secrets = set(folder.secret_digests)
    allowed = merged.get("secrets")
    asked = list(enumerate(allowed)) if isinstance(allowed, list) else []
    found += _check_allow_list([(i, s) for i, s in asked if isinstance(s, str)], secrets, shared)
    received = secrets | {
        s for _, s in asked if isinstance(s, str)
    }  # env names may collide with an own or a granted shared one
    envs: list[tuple[Path, Any]] = [(("env",), merged.get("env"))]
    schedules = merged.get("schedules")
    for index, schedule in enumerate(schedules if isinstance(schedules, list) else ()):
        if isinstance(schedule, dict):
            envs.append((("schedules", index, "env"), schedule.get("env")))
    for prefix, env in envs:
        for key in env if isinstance(env, dict) else ():
            if key in received:
                found.append(
                    (
                        (*prefix, key),
                        True,
                        f"{field_path((*prefix, key))}: name collides with a secret of the same name",
                    )
                )
    problems = []
    for path, on_key, text in found:
        file, mark = locate(path, on_key)
        problems.append(_problem(file, mark, text, name))
    return problems


def _check_allow_list(
    asked: list[tuple[int, str]], own: set[str], shared: SharedSecrets
) -> list[tuple[Path, bool, str]]:
    found: list[tuple[Path, bool, str]] = []
    for index, secret in asked:
        places = [path for path, _ in shared.names.get(secret, ())]
        if secret in own or len(places) == 1:
            continue
        if places:
            text = f"secret {secret!r} is defined in {' and '.join(places)}; keep it in one file"
        else:
            text = (
                f"no secret named {secret!r} (own: {', '.join(sorted(own)) or 'none'}; "
                f"shared in secrets/: {', '.join(shared.known()) or 'none'})"
            )
        found.append((("secrets", index), False, f"secrets[{index}]: {text}"))
    return found


def _assemble(
    commit: str | None,
    config_id: str,
    cfg: _Config,
    shared: SharedSecrets,
    snapshot: Snapshot,
) -> DesiredState:
    graph_problems = check_after_graph(
        snapshot.with_after, snapshot.results.keys(), DocsView(snapshot.results), cfg.doc
    )
    invalid: dict[str, list[Problem]] = {
        n: list(r.problems) for n, r in snapshot.with_problems.items()
    }
    for problem in graph_problems:
        assert problem.pipeline is not None
        invalid.setdefault(problem.pipeline, []).append(problem)
    pipelines = dict(snapshot.valid)
    for name in invalid:
        pipelines.pop(name, None)
    every = {p for ps in invalid.values() for p in ps} | set(cfg.problems) | set(shared.problems)
    # model_construct: every part is validated already; re-checking 5,000 pipelines costs ~10 ms
    return DesiredState.model_construct(
        commit=commit,
        config_id=config_id,
        settings=cfg.config.settings,
        pipelines=pipelines,
        invalid={
            n: tuple(sorted(set(ps), key=Problem.sort_key)) for n, ps in sorted(invalid.items())
        },
        problems=tuple(sorted(every, key=Problem.sort_key)),
    )
