"""Process settings: command-line flags win, then ``FASTFLOW_*`` environment variables, then defaults.

| variable                         | default                     |
|----------------------------------|-----------------------------|
| ``FASTFLOW_DATA``                | ``~/.local/share/fastflow`` |
| ``FASTFLOW_DOCKER_HOST``         | ``DOCKER_HOST``, else ``tcp://127.0.0.1:2375`` (the proxy) |
| ``FASTFLOW_RUNNER_IMAGE``        | ``fastflow-runner:local``   |
| ``FASTFLOW_CA_BUNDLE``           | unset: a CA bundle to mount into runner containers (``SSL_CERT_FILE``) |
| ``FASTFLOW_INSTANCE``            | ``default``: the ``io.fastflow.instance`` label value |
| ``FASTFLOW_ALLOW_DIRECT_SOCKET`` | ``0``: ``1`` allows ``unix://`` Docker hosts (logs a warning) |
| ``FASTFLOW_SITE_URL``            | unset: the status site's public URL, for status ``target_url`` links |
| ``FASTFLOW_FORGE``               | unset, or ``github`` / ``gitea``: also post commit statuses there |
| ``FASTFLOW_FORGE_URL``           | API base, e.g. ``https://api.github.com`` or ``https://gitea.example/api/v1`` |
| ``FASTFLOW_FORGE_REPO``          | ``owner/name`` on the forge |
| ``FASTFLOW_FORGE_TOKEN``         | token allowed to write commit statuses (never logged) |
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters.forge import ForgeKind, ForgeSettings
from reconciler.errors import InvalidInputError

DEFAULT_DOCKER_HOST = "tcp://127.0.0.1:2375"
DEFAULT_RUNNER_IMAGE = "fastflow-runner:local"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    docker_host: str = DEFAULT_DOCKER_HOST
    runner_image: str = DEFAULT_RUNNER_IMAGE
    ca_bundle: Path | None = None
    instance: str = "default"
    allow_direct_socket: bool = False
    site_url: str | None = None
    forge: ForgeSettings | None = None

    @property
    def workspaces(self) -> Path:
        return self.data_dir / "workspaces"


def load_settings(env: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from ``env`` (default ``os.environ``) with non-``None`` ``overrides`` on top."""
    env = dict(os.environ if env is None else env)
    values: dict[str, object] = {
        "data_dir": Path(env.get("FASTFLOW_DATA") or Path.home() / ".local" / "share" / "fastflow"),
        "docker_host": env.get("FASTFLOW_DOCKER_HOST")
        or env.get("DOCKER_HOST")
        or DEFAULT_DOCKER_HOST,
        "runner_image": env.get("FASTFLOW_RUNNER_IMAGE") or DEFAULT_RUNNER_IMAGE,
        "ca_bundle": Path(env["FASTFLOW_CA_BUNDLE"]) if env.get("FASTFLOW_CA_BUNDLE") else None,
        "instance": env.get("FASTFLOW_INSTANCE") or "default",
        "allow_direct_socket": env.get("FASTFLOW_ALLOW_DIRECT_SOCKET", "0") in ("1", "true", "yes"),
        "site_url": env.get("FASTFLOW_SITE_URL") or None,
        "forge": _forge(env),
    }
    values |= {k: v for k, v in overrides.items() if v is not None}
    settings = Settings(**values)  # type: ignore[arg-type]
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,40}", settings.instance):
        raise InvalidInputError(
            f"instance id {settings.instance!r} must match [a-z0-9][a-z0-9_.-]{{0,40}}"
        )
    if settings.ca_bundle is not None and not settings.ca_bundle.is_file():
        raise InvalidInputError(f"CA bundle {str(settings.ca_bundle)!r} is not a file")
    return settings


def _forge(env: dict[str, str]) -> ForgeSettings | None:
    kind = env.get("FASTFLOW_FORGE")
    if not kind:
        return None
    try:
        forge_kind = ForgeKind(kind)
    except ValueError:
        raise InvalidInputError(f"FASTFLOW_FORGE={kind!r}: use 'github' or 'gitea'") from None
    missing = [
        n
        for n in ("FASTFLOW_FORGE_URL", "FASTFLOW_FORGE_REPO", "FASTFLOW_FORGE_TOKEN")
        if not env.get(n)
    ]
    if missing:
        raise InvalidInputError(f"FASTFLOW_FORGE is set but {', '.join(missing)} is not")
    return ForgeSettings(
        forge_kind,
        env["FASTFLOW_FORGE_URL"],
        env["FASTFLOW_FORGE_REPO"],
        env["FASTFLOW_FORGE_TOKEN"],
    )
