"""Move pipelines with late-found problems (e.g. undecryptable secrets) into quarantine. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model.desired import DesiredState
from reconciler.model.problems import Problem


def with_problems(state: DesiredState, problems: Iterable[Problem]) -> DesiredState:
    """``state`` where every pipeline named by a problem is invalid, with the problems added."""
    found = [p for p in problems if p.pipeline is not None]
    if not found:
        return state
    invalid = {name: list(items) for name, items in state.invalid.items()}
    for problem in found:
        assert problem.pipeline is not None
        invalid.setdefault(problem.pipeline, []).append(problem)
    return state.model_copy(
        update={
            "pipelines": {n: p for n, p in state.pipelines.items() if n not in invalid},
            "invalid": {
                n: tuple(sorted(set(ps), key=Problem.sort_key)) for n, ps in invalid.items()
            },
            "problems": tuple(sorted(set(state.problems) | set(found), key=Problem.sort_key)),
        }
    )
