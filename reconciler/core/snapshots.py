"""The loader's memory between loads: per-name results and the views the assembly needs.

A ``Snapshot`` holds one load's results by name (sorted) plus the tables ``loading._assemble``
reads (valid pipelines, those with ``after:``, those with problems). The next load in the same
context (``fastflow.yaml`` blob, ``secrets/`` tree) copies these tables and updates only the names
whose tree id changed, so one change among 5,000 pipelines costs a few dict copies in C, not
5,000 Python steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from reconciler.core.yamlread import YamlDoc
from reconciler.model.desired import Pipeline
from reconciler.model.problems import Problem

_T = TypeVar("_T")


@dataclass(frozen=True)
class LoadResult:
    """One pipeline folder loaded in one context: the pipeline, or its problems."""

    pipeline: Pipeline | None
    problems: tuple[Problem, ...]
    doc: YamlDoc | None


@dataclass(frozen=True)
class Snapshot:
    """One load's results by name (sorted), and the views ``_assemble`` needs, kept so that the
    next load in the same context (``fastflow.yaml`` blob, ``secrets/`` tree) updates only the
    names whose tree id changed."""

    context: tuple[str, str]
    listing: dict[str, str]
    results: dict[str, LoadResult]  # pipeline folders only
    valid: dict[str, Pipeline]  # results without problems
    with_after: dict[str, Pipeline]  # valid ones with `after:` (the graph check's input)
    with_problems: dict[str, LoadResult]

    def updated(
        self, listing: dict[str, str], resolve: Callable[[str, str], LoadResult | None]
    ) -> Snapshot:
        changed = {name for name, _ in listing.items() - self.listing.items()}
        removed = self.listing.keys() - listing.keys()
        if not changed and not removed:
            return self
        results, valid = dict(self.results), dict(self.valid)
        with_after, with_problems = dict(self.with_after), dict(self.with_problems)
        grew = False
        for name in sorted(changed | removed):
            found = resolve(name, listing[name]) if name in listing else None
            pipeline = found.pipeline if found is not None and not found.problems else None
            grew |= _put(results, name, found)
            grew |= _put(with_problems, name, found if found and found.problems else None)
            grew |= _put(valid, name, pipeline)
            grew |= _put(with_after, name, pipeline if pipeline and pipeline.spec.after else None)
        if grew:  # keep names in order (a name new to a table was appended at its end)
            results, valid = _by_name(results), _by_name(valid)
            with_after, with_problems = _by_name(with_after), _by_name(with_problems)
        return Snapshot(self.context, listing, results, valid, with_after, with_problems)


def _put(table: dict[str, _T], name: str, value: _T | None) -> bool:
    """Set or remove ``name`` in place (a replaced key keeps its position); True when the name
    is new to the table, i.e. appended at its end."""
    if value is None:
        table.pop(name, None)
        return False
    new = name not in table
    table[name] = value
    return new


def _by_name(table: dict[str, _T]) -> dict[str, _T]:
    return dict(sorted(table.items()))


class DocsView(Mapping[str, YamlDoc]):
    """``name -> pipeline.yaml`` document of a snapshot, without building a 5,000-entry dict
    (the graph check looks up only the few pipelines it reports)."""

    def __init__(self, results: Mapping[str, LoadResult]) -> None:
        self._results = results

    def __getitem__(self, name: str) -> YamlDoc:
        doc = self._results[name].doc
        if doc is None:
            raise KeyError(name)
        return doc

    def __iter__(self) -> Iterator[str]:
        return (n for n, r in self._results.items() if r.doc is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)
