"""The Docker backend: one container per attempt, through ``DOCKER_HOST`` (the socket proxy).

docker-py is synchronous; every call runs in a worker thread so the event loop never blocks.
The container (ARCHITECTURE.md §4): runner image, workspace read-only at ``/app``, ``/tmp`` as
tmpfs, the shared uv cache at ``/uv-cache``, a read-only root filesystem, a non-root user,
``no-new-privileges``, every capability dropped, memory (without swap), CPU and pids limits, the
contract labels, and a deterministic name so one attempt can never start twice.

The outcome is read from the engine: ``OOMKilled`` decides ``oom`` (never a guess from exit
137); a kill by our deadline is ``timed_out``; ``cancel`` makes ``cancelled``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker
import docker.errors
import docker.types
import requests.exceptions

from reconciler.core.commands import (
    CA_BUNDLE_PATH,
    SITE_DIR,
    SITECUSTOMIZE,
    START_MARKER,
    UV_CACHE_DIR,
)
from reconciler.errors import ExecutorUnavailableError, LaunchError
from reconciler.executors.base import (
    LABEL_INSTANCE,
    LABEL_MANAGED,
    RunHandle,
    labels_for,
    run_from_labels,
)
from reconciler.executors.dockerdata import (
    AttemptNotes,
    classify,
    container_name,
    docker_time,
    explain_api_error,
    in_daemon_thread,
    log_entries,
    parse_log_line,
    parse_stats,
    to_float,
)
from reconciler.model.runs import (
    LogLine,
    ManagedRun,
    ResourceSample,
    RunOutcome,
    RunRequest,
    RunState,
    Stream,
)

logger = logging.getLogger(__name__)
RUNNER_UID = 10001
UV_VERSION_LABEL = "io.fastflow.uv-version"
WAIT_CHUNK_S = 300.0  # long waits are split: proxies close idle HTTP requests
STOP_GRACE_S = 10
API_VERSION = "1.41"


@dataclass(frozen=True)
class DockerSettings:
    instance: str
    data_dir: Path
    base_url: str = "tcp://127.0.0.1:2375"
    ca_bundle: Path | None = (
        None  # mounted at /etc/fastflow/ca-bundle.pem, SSL_CERT_FILE points to it
    )
    user: str = f"{RUNNER_UID}:{RUNNER_UID}"
    allow_direct_socket: bool = False
    api_timeout_s: float = 60.0

    @property
    def uv_cache(self) -> Path:
        return self.data_dir / "uv-cache"

    @property
    def site_dir(self) -> Path:
        return self.data_dir / "runner-site"


class DockerExecutor:
    def __init__(self, settings: DockerSettings, client: docker.DockerClient | None = None) -> None:
        if settings.base_url.startswith("unix://") and not settings.allow_direct_socket:
            raise LaunchError(
                f"refusing to use the Docker socket directly ({settings.base_url}); point DOCKER_HOST "
                "at the socket proxy, or pass --allow-direct-socket"
            )
        if settings.base_url.startswith("unix://"):
            logger.warning(
                "talking to the Docker socket directly (%s), not through a proxy", settings.base_url
            )
        self.settings = settings
        self.instance = settings.instance
        # A fixed API version: no request at construction, so an engine that is down right now
        # surfaces as ExecutorUnavailableError on the first call. 1.41 (Docker 20.10) is served
        # by every engine we support.
        self._client = client or docker.DockerClient(
            base_url=settings.base_url, timeout=int(settings.api_timeout_s), version=API_VERSION
        )
        self._api = self._client.api
        self._attempts: dict[str, AttemptNotes] = {}
        self._uv_versions: dict[str, str] = {}
        self._prepare_dirs()

    @staticmethod
    def ping(base_url: str) -> str | None:
        """``None`` when the Docker API at ``base_url`` answers, else why not."""
        try:
            client = docker.DockerClient(base_url=base_url, timeout=5, version=API_VERSION)
            try:
                client.ping()
            finally:
                client.close()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return str(exc)
        return None

    @staticmethod
    def missing_image(base_url: str, image: str) -> str | None:
        """``None`` when ``image`` is on the engine, else what to do about it."""
        try:
            client = docker.DockerClient(base_url=base_url, timeout=10, version=API_VERSION)
            try:
                client.images.get(image)
            finally:
                client.close()
        except docker.errors.ImageNotFound:
            return f"image {image!r} is not on the engine: build it with `bash scripts/setup`"
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return f"cannot ask the Docker API at {base_url} for {image!r}: {exc}"
        return None

    def _prepare_dirs(self) -> None:
        cache, site = self.settings.uv_cache, self.settings.site_dir
        cache.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(cache, RUNNER_UID, RUNNER_UID)
        else:  # cannot hand it to the runner user: let every user write, sticky like /tmp
            cache.chmod(0o1777)
        site.mkdir(parents=True, exist_ok=True)
        site.chmod(0o755)
        script = site / "sitecustomize.py"
        if not script.exists() or script.read_text() != SITECUSTOMIZE:
            script.write_text(SITECUSTOMIZE)
            script.chmod(0o644)

    # -- launching -------------------------------------------------------------------------

    async def launch(
        self, request: RunRequest, secrets: Mapping[str, str] | None = None
    ) -> RunHandle:
        return await asyncio.to_thread(self._launch, request, dict(secrets or {}))

    def _launch(self, request: RunRequest, secrets: dict[str, str]) -> RunHandle:
        name = container_name(self.instance, request.run_id, request.attempt)
        try:
            ref = self._create(request, secrets, name)
            self._api.start(ref)
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "already in use" in str(exc.explanation or ""):
                logger.info("attempt %s exists already; adopting it", name)
                ref = self._api.inspect_container(name)["Id"]
            else:
                raise LaunchError(explain_api_error(exc, request.image)) from None
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise ExecutorUnavailableError(
                f"Docker API at {self.settings.base_url} does not answer: {exc}"
            ) from None
        self._attempts.setdefault(ref, AttemptNotes())
        return RunHandle(ref=ref, request=request)

    def _create(self, request: RunRequest, secrets: dict[str, str], name: str) -> str:
        memory = request.resources.memory
        binds: dict[str, Mapping[str, str]] = {
            request.workspace: {"bind": "/app", "mode": "ro"},
            str(self.settings.uv_cache): {"bind": UV_CACHE_DIR, "mode": "rw"},
            str(self.settings.site_dir): {"bind": SITE_DIR, "mode": "ro"},
        }
        env = dict(request.env)
        if self.settings.ca_bundle is not None:
            binds[str(self.settings.ca_bundle)] = {"bind": CA_BUNDLE_PATH, "mode": "ro"}
            env |= {"SSL_CERT_FILE": CA_BUNDLE_PATH, "REQUESTS_CA_BUNDLE": CA_BUNDLE_PATH}
        host_config = self._api.create_host_config(
            binds=binds,
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={memory}"},
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(request.resources.cpus * 1e9),
            pids_limit=request.resources.pids,
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            read_only=True,
            network_mode=request.network.value,
            log_config=docker.types.LogConfig(
                type="json-file", config={"max-size": "64m", "max-file": "2"}
            ),
        )
        created = self._api.create_container(
            request.image,
            command=request.command,
            name=name,
            user=self.settings.user,
            working_dir="/app",
            environment={**env, **secrets},
            labels=labels_for(request, self.instance),
            host_config=host_config,
        )
        return str(created["Id"])

    # -- logs ------------------------------------------------------------------------------

    async def logs(self, handle: RunHandle) -> AsyncIterator[LogLine]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[LogLine | None] = asyncio.Queue()
        attempt = self._attempts.setdefault(handle.ref, AttemptNotes())
        counter = iter(range(1, 1 << 62))
        lock = threading.Lock()

        def pump(stream: Stream) -> None:
            try:
                for at, text in self._follow(handle.ref, stream):
                    if stream is Stream.STDERR and text.startswith(START_MARKER):
                        attempt.user_start = to_float(text[len(START_MARKER) :])
                        continue
                    with lock:
                        line = LogLine(
                            run_id=handle.request.run_id,
                            stream=stream,
                            at=at,
                            text=text,
                            seq=next(counter),
                        )
                    loop.call_soon_threadsafe(queue.put_nowait, line)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        threads = [threading.Thread(target=pump, args=(s,), daemon=True) for s in Stream]
        for thread in threads:
            thread.start()
        open_streams = len(threads)
        while open_streams:
            item = await queue.get()
            if item is None:
                open_streams -= 1
            else:
                yield item

    def _follow(self, ref: str, stream: Stream) -> Iterator[tuple[datetime, str]]:
        """Follow one stream to the end, reconnecting (``since``) when a proxy cuts it short."""
        since: datetime | None = None
        while True:
            try:
                for at, text in self._read_stream(ref, stream, since):
                    if since is not None and at <= since:
                        continue
                    since = at
                    yield at, text
            except (requests.exceptions.RequestException, docker.errors.APIError) as exc:
                logger.debug("log stream of %s interrupted: %s", ref[:12], exc)
            if not self._is_running(ref):
                return

    def _read_stream(
        self, ref: str, stream: Stream, since: datetime | None
    ) -> Iterator[tuple[datetime, str]]:
        """Lines of one stream. Docker stores a line longer than 16 KiB as several partial
        entries, each with its own timestamp; they are joined back into one line here, so a
        secret split at that boundary is still whole when it is masked."""
        chunks = self._api.logs(
            ref,
            stdout=stream is Stream.STDOUT,
            stderr=stream is Stream.STDERR,
            stream=True,
            follow=True,
            timestamps=True,
            since=since.timestamp() if since else None,
        )
        held, held_at = "", None
        for chunk in chunks:
            for entry in log_entries(chunk):
                at, text = parse_log_line(entry.rstrip(b"\n"))
                if entry.endswith(b"\n"):
                    yield held_at or at, held + text
                    held, held_at = "", None
                else:
                    held, held_at = held + text, held_at or at
        if held:
            yield held_at or datetime.now(UTC), held

    def _is_running(self, ref: str) -> bool:
        try:
            return bool(self._api.inspect_container(ref)["State"]["Running"])
        except docker.errors.NotFound:
            return False
        except (requests.exceptions.RequestException, docker.errors.APIError):
            return True  # unknown: keep trying, the container outlives us

    # -- waiting, cancelling, outcomes -------------------------------------------------------

    async def wait(self, handle: RunHandle, timeout_s: float | None = None) -> RunOutcome:
        started = await asyncio.to_thread(self._started_at, handle.ref)
        deadline = None if timeout_s is None else started + timeout_s
        while True:
            remaining = None if deadline is None else deadline - datetime.now(UTC).timestamp()
            if remaining is not None and remaining <= 0:
                await self._stop(handle, RunState.TIMED_OUT, grace_s=0)
                break
            chunk = WAIT_CHUNK_S if remaining is None else min(WAIT_CHUNK_S, remaining)
            if await in_daemon_thread(self._wait_chunk, handle.ref, chunk):
                break
        outcome = await self.outcome(handle)
        assert outcome is not None, "container still running after wait"
        return outcome

    def _wait_chunk(self, ref: str, seconds: float) -> bool:
        """True once the container has stopped; False when ``seconds`` passed first."""
        try:
            self._api.wait(ref, timeout=max(seconds, 0.05))  # type: ignore[arg-type]  # requests takes floats
            return True
        except requests.exceptions.ReadTimeout:
            return False
        except requests.exceptions.ConnectionError as exc:
            if "timed out" in str(exc).lower():
                return False
            raise ExecutorUnavailableError(f"lost the Docker API while waiting: {exc}") from None
        except docker.errors.NotFound:
            return True

    def _started_at(self, ref: str) -> float:
        state = self._api.inspect_container(ref)["State"]
        return docker_time(state.get("StartedAt")) or datetime.now(UTC).timestamp()

    async def cancel(self, handle: RunHandle) -> None:
        await self._stop(handle, RunState.CANCELLED, grace_s=STOP_GRACE_S)

    async def _stop(self, handle: RunHandle, reason: RunState, grace_s: int) -> None:
        self._attempts.setdefault(handle.ref, AttemptNotes()).ended_by = reason
        try:
            if grace_s:
                await asyncio.to_thread(self._api.stop, handle.ref, timeout=grace_s)
            else:
                await asyncio.to_thread(self._api.kill, handle.ref)
        except docker.errors.APIError as exc:
            if exc.status_code not in (304, 404, 409):  # already stopped or gone
                raise

    async def outcome(self, handle: RunHandle) -> RunOutcome | None:
        info = await asyncio.to_thread(self._api.inspect_container, handle.ref)
        state = info["State"]
        if state.get("Running") or state.get("Status") == "created":
            return None
        attempt = self._attempts.get(handle.ref, AttemptNotes())
        image_id = str(info.get("Image", ""))
        uv_version = await asyncio.to_thread(self._uv_version, image_id)
        return classify(handle.request, state, attempt, image_id, uv_version)

    def _uv_version(self, image_id: str) -> str:
        if image_id not in self._uv_versions:
            try:
                info = self._api.inspect_image(image_id)  # type: ignore[no-untyped-call]  # untyped in the stubs
                labels = info["Config"].get("Labels") or {}
            except docker.errors.APIError:
                labels = {}
            self._uv_versions[image_id] = str(labels.get(UV_VERSION_LABEL, ""))
        return self._uv_versions[image_id]

    async def stats(self, handle: RunHandle) -> ResourceSample | None:
        try:
            raw = await asyncio.to_thread(self._api.stats, handle.ref, stream=False, one_shot=True)
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return None
        return parse_stats(raw)

    async def list_managed(self) -> list[ManagedRun]:
        filters = {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_INSTANCE}={self.instance}"]}
        containers = await asyncio.to_thread(self._api.containers, all=True, filters=filters)
        found = []
        for item in containers:
            managed = run_from_labels(
                str(item["Id"]), item.get("Labels") or {}, item.get("State") == "running"
            )
            if managed is not None:
                found.append(managed)
        return found

    async def adopt(self, managed: ManagedRun) -> RunHandle:
        info = await asyncio.to_thread(self._api.inspect_container, managed.ref)
        config = info["Config"]
        request = RunRequest(
            run_id=managed.run_id,
            pipeline=managed.pipeline,
            commit=managed.commit,
            trigger=managed.trigger,
            attempt=managed.attempt,
            image=str(config.get("Image", "")),
            command=list(config.get("Cmd") or []),
            workspace="",
            timeout_s=managed.timeout_s,
            scheduled_for=managed.scheduled_for,
        )
        self._attempts.setdefault(managed.ref, AttemptNotes())
        return RunHandle(ref=managed.ref, request=request)

    async def remove(self, handle: RunHandle) -> None:
        try:
            await asyncio.to_thread(self._api.remove_container, handle.ref, v=True, force=False)
        except docker.errors.NotFound:
            pass
        self._attempts.pop(handle.ref, None)

    def close(self) -> None:
        self._client.close()
