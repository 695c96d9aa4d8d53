"""Checks across pipelines: every ``after:`` names a pipeline that exists, and no chain loops.

A pipeline in a cycle is reported at the ``after`` entry that closes the loop, with the loop
spelled out (``after[0]: cycle: a -> b -> a``), and is quarantined like any invalid pipeline.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Mapping, Set

from reconciler.core.sources import PIPELINES_DIR, SPEC_FILE
from reconciler.core.yamlread import Mark, YamlDoc
from reconciler.model.desired import Pipeline
from reconciler.model.problems import Problem


def check_after_graph(
    pipelines: Mapping[str, Pipeline],
    known: Set[str],
    docs: Mapping[str, YamlDoc],
    config_doc: YamlDoc | None = None,
) -> list[Problem]:
    """Problems for unknown ``after`` references (among ``known`` names) and for cycles.

    Only pipelines with an ``after:`` matter, so callers may pass just those."""
    del config_doc  # `after` set in fastflow.yaml defaults is located at the pipeline's file
    problems: list[Problem] = []
    edges: dict[str, list[str]] = {}
    for name, pipeline in pipelines.items():
        if not pipeline.spec.after:
            continue  # no outgoing edge: cannot be part of a cycle, so stays out of the graph
        edges[name] = []
        for index, trigger in enumerate(pipeline.spec.after):
            if trigger.pipeline in known:
                edges[name].append(trigger.pipeline)
                continue
            close = difflib.get_close_matches(trigger.pipeline, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                _at(
                    name,
                    docs,
                    index,
                    f"after[{index}]: no pipeline named {trigger.pipeline!r}{hint}",
                )
            )
    for component in _cycles(edges):
        for name in sorted(component):
            for index, trigger in enumerate(pipelines[name].spec.after):
                if trigger.pipeline in component:
                    loop = " -> ".join([name, *_path(edges, trigger.pipeline, name, component)])
                    problems.append(_at(name, docs, index, f"after[{index}]: cycle: {loop}"))
                    break
    return problems


def _at(name: str, docs: Mapping[str, YamlDoc], index: int, message: str) -> Problem:
    doc = docs.get(name)
    mark = doc.locate(("after", index)) if doc is not None else Mark(1, 1)
    path = f"{PIPELINES_DIR}/{name}/{SPEC_FILE}"
    return Problem(path=path, line=mark.line, col=mark.col, message=message, pipeline=name)


def _path(edges: Mapping[str, list[str]], start: str, goal: str, within: set[str]) -> list[str]:
    """Shortest path ``start ... goal`` inside ``within`` (breadth first)."""
    parents: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            break
        for nxt in edges.get(node, ()):
            if nxt in within and nxt not in parents:
                parents[nxt] = node
                queue.append(nxt)
    path: list[str] = []
    cursor: str | None = goal
    while cursor is not None:
        path.append(cursor)
        cursor = parents.get(cursor)
    return path[::-1]


def _cycles(edges: Mapping[str, list[str]]) -> list[set[str]]:
    """Strongly connected components that contain a cycle (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(edges.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    found.append(component)
    return found
