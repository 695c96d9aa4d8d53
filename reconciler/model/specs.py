"""What a user writes: ``pipeline.yaml`` (``PipelineSpec``) and ``fastflow.yaml`` (``RepoConfig``).

Every field is optional; a pipeline's effective spec is the built-in defaults, overlaid by
``fastflow.yaml``'s ``defaults:`` mapping, overlaid by its own ``pipeline.yaml`` (mappings merge
key by key, lists and scalars replace). Unknown keys are errors. The JSON Schemas in ``schemas/``
are generated from these classes (``reconciler.core.schemas``).
"""

from __future__ import annotations

import functools
import posixpath
import re
import zoneinfo
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from reconciler.model.units import format_duration, format_size, parse_duration, parse_size

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_ENV_PREFIX = "FASTFLOW_"
CRON_ALIASES = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)


class ConcurrencyPolicy(StrEnum):
    SKIP = "skip"
    QUEUE = "queue"
    REPLACE = "replace"
    ALLOW = "allow"


class MissedPolicy(StrEnum):
    SKIP = "skip"
    LATEST = "latest"
    ALL = "all"


class NetworkMode(StrEnum):
    BRIDGE = "bridge"
    NONE = "none"


class AfterCondition(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    ALWAYS = "always"


def _to_duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} has no unit; write it as '{value}s', '{value}m' or '{value}h'")
    return value


def _to_size(value: object) -> object:
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return parse_size(value)
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$",
            "description": "a duration: 30s, 15m, 2h, 1d or combinations such as 1h30m",
        }
    ),
]
ByteSize = Annotated[
    int,
    BeforeValidator(_to_size),
    PlainSerializer(format_size, return_type=str),
    WithJsonSchema(
        {
            "type": ["string", "integer"],
            "description": "bytes, or a size: 512Mi, 1Gi (binary), 1.5G (decimal), 2g (binary)",
        }
    ),
]


class Frozen(BaseModel):
    """Strict (no silent coercion of user input), frozen, unknown keys rejected.

    Enum fields opt out of strictness (``Field(strict=False)``) so that their YAML words validate.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


@functools.lru_cache(maxsize=4096)
def check_cron(expr: str) -> str:
    """A five-field cron expression or an ``@daily``-style alias; raises ``ValueError``."""
    text = " ".join(expr.split())
    if text.startswith("@"):
        if text not in CRON_ALIASES:
            raise ValueError(
                f"{expr!r} is not a cron alias; use one of {', '.join(sorted(CRON_ALIASES))}"
            )
        return text
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(
            f"{expr!r} is not a cron expression: it has {len(fields)} fields, "
            "cron needs 5 (minute hour day-of-month month day-of-week)"
        )
    if not croniter.is_valid(text):
        raise ValueError(f"{expr!r} is not a cron expression")
    return text


def check_timezone(name: str) -> str:
    """An IANA time zone name such as ``Europe/Berlin``; raises ``ValueError``."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(
            f"{name!r} is not a known time zone (IANA names such as 'Europe/Berlin')"
        ) from exc
    return name


def check_env_names(env: dict[str, str]) -> dict[str, str]:
    for key in env:
        if key.upper().startswith(RESERVED_ENV_PREFIX):
            raise ValueError(
                f"env name {key!r} is reserved: names starting with FASTFLOW_ are set by Fast-Flow"
            )
    return env


CronExpr = Annotated[str, AfterValidator(check_cron)]
TimeZoneName = Annotated[str, AfterValidator(check_timezone)]
EnvMap = Annotated[
    dict[Annotated[str, Field(pattern=f"^{ENV_NAME_PATTERN.pattern}$")], str],
    AfterValidator(check_env_names),
]


def _check_entrypoint(value: str) -> str:
    if not value or value.startswith("/") or "\\" in value:
        raise ValueError(f"entrypoint {value!r} must be a relative path inside the pipeline folder")
    if ".." in value.split("/"):
        raise ValueError(f"entrypoint {value!r} must not contain '..'")
    return posixpath.normpath(value)


Entrypoint = Annotated[str, AfterValidator(_check_entrypoint)]


class Schedule(Frozen):
    """One trigger in time: ``{cron, timezone}`` or ``{every}``, with optional overrides."""

    cron: CronExpr | None = Field(None, description="five-field cron expression or @daily alias")
    every: Duration | None = Field(
        None, description="fixed interval, anchored at 1970-01-01T00:00Z"
    )
    timezone: TimeZoneName = Field("UTC", description="IANA time zone the cron is read in")
    name: Annotated[str, Field(pattern=f"^{NAME_PATTERN.pattern}$")] | None = None
    args: list[str] | None = Field(
        None, description="replaces the pipeline's args for this schedule"
    )
    env: EnvMap = Field(default_factory=dict, description="added to the pipeline's env")

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if (self.cron is None) == (self.every is None):
            raise ValueError("a schedule needs exactly one of 'cron' or 'every'")
        if self.every is not None and self.every < timedelta(seconds=1):
            raise ValueError("'every' must be at least 1s")
        return self

    @property
    def expression(self) -> str:
        if self.cron is not None:
            return self.cron
        return f"every {format_duration(self.every or timedelta())}"


def _to_after(value: object) -> object:
    return {"pipeline": value} if isinstance(value, str) else value


class AfterTrigger(Frozen):
    """Run this pipeline after a run of ``pipeline`` ends in ``on``."""

    pipeline: str
    on: AfterCondition = Field(AfterCondition.SUCCESS, strict=False)


AfterItem = Annotated[
    AfterTrigger,
    BeforeValidator(_to_after, json_schema_input_type=str | AfterTrigger),
]


class Retries(Frozen):
    max: int = Field(0, ge=0, le=100, description="extra attempts after the first")
    delay: Duration = timedelta(seconds=30)
    backoff: float = Field(2.0, ge=1.0, le=10.0)
    max_delay: Duration = timedelta(hours=1)


class Resources(Frozen):
    memory: ByteSize = Field(2**30, ge=6 * 2**20, description="hard memory limit")
    cpus: float = Field(1.0, gt=0, le=256)
    pids: int = Field(512, ge=16, le=1_000_000)


class PipelineSpec(Frozen):
    """The fields of ``pipelines/<name>/pipeline.yaml`` (ARCHITECTURE.md §1)."""

    description: str = ""
    entrypoint: Entrypoint = "main.py"
    args: list[str] = Field(default_factory=list)
    python: str | None = Field(
        None, description="Python version for `uv run --python`, e.g. '3.12'"
    )
    image: str | None = Field(None, description="runner image (must contain uv)")
    schedules: list[Schedule] = Field(default_factory=list)
    on_push: bool = False
    after: list[AfterItem] = Field(default_factory=list)
    concurrency: ConcurrencyPolicy = Field(ConcurrencyPolicy.SKIP, strict=False)
    missed: MissedPolicy = Field(MissedPolicy.LATEST, strict=False)
    max_catchup: int = Field(10, ge=1, le=1000)
    starting_deadline: Duration = timedelta(hours=1)
    timeout: Duration = timedelta(hours=1)
    retries: Retries = Field(default_factory=Retries)
    resources: Resources = Field(default_factory=Resources)
    network: NetworkMode = Field(NetworkMode.BRIDGE, strict=False)
    env: EnvMap = Field(default_factory=dict)
    secrets: list[str] | None = Field(
        None,
        description="allow-list of secret names: its own, or shared ones from secrets/ "
        "(received only when named here); default: all of its own",
    )
    suspend: bool = False

    @field_validator("python")
    @classmethod
    def _python(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9.@+<>=!~,_-]{1,40}", value):
            raise ValueError(f"python {value!r} is not a version request such as '3.12'")
        return value

    @field_validator("timeout", "starting_deadline")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @field_validator("schedules")
    @classmethod
    def _unique_schedule_names(cls, schedules: list[Schedule]) -> list[Schedule]:
        names = [s.name for s in schedules if s.name]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"schedule names must be unique; repeated: {', '.join(duplicates)}")
        return schedules


class LogRetention(Frozen):
    max_runs: int = Field(100, ge=1, description="archived logs kept per pipeline")
    max_age: Duration = timedelta(days=30)


class RepoSettings(Frozen):
    """Reconciler settings that belong to the repository (``fastflow.yaml`` ``settings:``)."""

    max_parallel_runs: int = Field(4, ge=1, le=1000, description="runs executing at once")
    note_max_runs: int = Field(
        20, ge=1, le=1000, description="run lines kept per pipeline per commit note"
    )
    log_retention: LogRetention = Field(default_factory=LogRetention)


class RepoConfig(Frozen):
    """``fastflow.yaml``: repository-wide pipeline defaults and settings."""

    version: int = Field(1, ge=1, le=1)
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="any pipeline.yaml field, applied to every pipeline"
    )
    settings: RepoSettings = Field(default_factory=RepoSettings)


def merge_defaults(defaults: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """Overlay ``own`` on ``defaults``: mappings merge key by key, everything else replaces."""
    merged = dict(defaults)
    for key, value in own.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict):
            merged[key] = merge_defaults(base, value)
        else:
            merged[key] = value
    return merged
