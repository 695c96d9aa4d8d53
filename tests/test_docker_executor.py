"""The Docker executor end to end: a commit's pipeline, its workspace, `uv run` in a real container.

Dependency tests download from the package index, so they use `network: bridge` and the CA
bundle setting (this machine's HTTPS goes through a TLS-intercepting proxy); all others run with
`network: none`.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.adapters import gitrepo, workspaces
from reconciler.core.commands import make_request
from reconciler.executors.docker import DockerExecutor, DockerSettings
from reconciler.model.runs import LogLine, RunOutcome, RunState, Stream, Trigger
from reconciler.runtime.runs import execute
from tests.dockerutil import DOCKER_HOST, RUNNER_IMAGE, require_engine
from tests.gitutil import GitRepo

pytestmark = pytest.mark.docker
FIXTURES = Path(__file__).parent / "fixtures"
CA_BUNDLE = os.environ.get("FASTFLOW_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"
PEP723 = "# /// script\n# dependencies = ['six==1.17.0']\n# ///\nimport six\nprint('six', six.__version__)\n"


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[DockerExecutor]:
    require_engine()
    bundle = Path(CA_BUNDLE) if Path(CA_BUNDLE).is_file() else None
    settings = DockerSettings(
        instance=f"test-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path / "data",
        base_url=DOCKER_HOST,
        ca_bundle=bundle,
    )
    docker_executor = DockerExecutor(settings)
    yield docker_executor
    asyncio.run(_cleanup(docker_executor))
    docker_executor.close()


async def _cleanup(executor: DockerExecutor) -> None:
    for managed in await executor.list_managed():
        handle = await executor.adopt(managed)
        if managed.running:
            await executor.cancel(handle)
        await executor.remove(handle)


def run_pipeline(
    executor: DockerExecutor, git_repo: GitRepo, files: dict[str, str], name: str = "p"
) -> tuple[RunOutcome, list[LogLine]]:
    sha = git_repo.commit(files)
    repo = gitrepo.open_repo(git_repo.path)
    state = gitrepo.load_commit(repo, gitrepo.resolve_commit(repo, sha))
    assert state.ok, state.problems
    pipeline = state.pipelines[name]
    workspace = workspaces.materialize(
        repo, pipeline.tree_id, executor.settings.data_dir / "workspaces"
    )
    request = make_request(
        pipeline,
        run_id=f"t-{uuid.uuid4().hex[:10]}",
        commit=sha,
        trigger=Trigger.MANUAL,
        workspace=str(workspace),
        default_image=RUNNER_IMAGE,
    )
    lines: list[LogLine] = []
    outcome = asyncio.run(execute(executor, request, lines.append))
    return outcome, lines


def stdout(lines: list[LogLine]) -> list[str]:
    return [line.text for line in lines if line.stream is Stream.STDOUT]


def stderr(lines: list[LogLine]) -> str:
    return "\n".join(line.text for line in lines if line.stream is Stream.STDERR)


@pytest.mark.parametrize(
    "files",
    [
        pytest.param({"pipelines/p/main.py": PEP723}, id="pep723-script"),
        pytest.param(
            {
                "pipelines/p/main.py": "import six\nprint('six', six.__version__)\n",
                "pipelines/p/pyproject.toml": (FIXTURES / "project" / "pyproject.toml").read_text(),
                "pipelines/p/uv.lock": (FIXTURES / "project" / "uv.lock").read_text(),
            },
            id="uv-project-frozen",
        ),
        pytest.param(
            {
                "pipelines/p/main.py": "import six\nprint('six', six.__version__)\n",
                "pipelines/p/requirements.txt": "six==1.17.0\n",
            },
            id="requirements-txt",
        ),
    ],
)
def test_each_dependency_style_installs_and_runs(
    executor: DockerExecutor, git_repo: GitRepo, files: dict[str, str]
) -> None:
    outcome, lines = run_pipeline(
        executor, git_repo, {"pipelines/p/pipeline.yaml": "network: bridge\n", **files}
    )
    assert outcome.state is RunState.SUCCEEDED, stderr(lines)
    assert stdout(lines) == ["six 1.17.0"]
    assert outcome.uv_version == "0.13.9"
    assert outcome.setup_s is not None and outcome.setup_s >= 0


def _cached_artifacts(cache: Path) -> set[str]:
    return {
        str(p.relative_to(cache))
        for d in ("archive-v0", "wheels-v8")
        for p in (cache / d).rglob("*")
    }


def test_second_run_with_the_same_dependencies_installs_nothing(
    executor: DockerExecutor, git_repo: GitRepo
) -> None:
    files = {"pipelines/p/pipeline.yaml": "network: bridge\n", "pipelines/p/main.py": PEP723}
    first, first_lines = run_pipeline(executor, git_repo, files)
    cached = _cached_artifacts(executor.settings.uv_cache)
    second, second_lines = run_pipeline(
        executor, git_repo, {**files, "pipelines/p/pipeline.yaml": "network: none\n"}
    )
    assert first.state is second.state is RunState.SUCCEEDED, stderr(second_lines)
    assert "Installed 1 package" in stderr(first_lines)
    assert cached and _cached_artifacts(executor.settings.uv_cache) == cached
    for word in ("Installed", "Downloading", "Prepared", "Resolved"):
        assert word not in stderr(second_lines)


def test_workspace_is_read_only_and_the_process_has_no_privileges(
    executor: DockerExecutor, git_repo: GitRepo
) -> None:
    script = """
import os
try:
    open('/app/written', 'w')
    print('workspace writable')
except OSError as exc:
    print('workspace', exc.strerror)
try:
    open('/etc/written', 'w')
    print('rootfs writable')
except OSError as exc:
    print('rootfs', exc.strerror)
open('/tmp/scratch', 'w').write('ok')
print('tmp writable')
print('uid', os.getuid(), os.getgid())
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
print('CapEff', status['CapEff'].strip(), 'CapBnd', status['CapBnd'].strip(), 'NoNewPrivs', status['NoNewPrivs'].strip())
print('run', os.environ['FASTFLOW_RUN_ID'].startswith('t-'), os.environ['FASTFLOW_PIPELINE'])
"""
    outcome, lines = run_pipeline(
        executor,
        git_repo,
        {"pipelines/p/pipeline.yaml": "network: none\n", "pipelines/p/main.py": script},
    )
    assert outcome.state is RunState.SUCCEEDED, stderr(lines)
    assert stdout(lines) == [
        "workspace Read-only file system",
        "rootfs Read-only file system",
        "tmp writable",
        "uid 10001 10001",
        "CapEff 0000000000000000 CapBnd 0000000000000000 NoNewPrivs 1",
        "run True p",
    ]


LIMITS_SCRIPT = """
import os
def first(*paths):
    for path in paths:
        if os.path.exists(path):
            return open(path).read().split()
print('pids', first('/sys/fs/cgroup/pids/pids.max', '/sys/fs/cgroup/pids.max')[0])
print('memory', first('/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory.max')[0])
cpu = first('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', '/sys/fs/cgroup/cpu.max')[0]
period = first('/sys/fs/cgroup/cpu/cpu.cfs_period_us', '/sys/fs/cgroup/cpu.max')[-1]
print('cpus', int(cpu) / int(period))
"""


def test_memory_cpu_and_pids_limits_are_set(executor: DockerExecutor, git_repo: GitRepo) -> None:
    spec = "network: none\nresources: {memory: 96Mi, cpus: 0.5, pids: 77}\n"
    files = {"pipelines/p/pipeline.yaml": spec, "pipelines/p/main.py": LIMITS_SCRIPT}
    outcome, lines = run_pipeline(executor, git_repo, files)
    assert outcome.state is RunState.SUCCEEDED, stderr(lines)
    assert stdout(lines) == ["pids 77", f"memory {96 * 2**20}", "cpus 0.5"]


def test_timeout_ends_timed_out_within_a_second_of_the_deadline(
    executor: DockerExecutor, git_repo: GitRepo
) -> None:
    spec = "network: none\ntimeout: 2s\n"
    script = "import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"
    outcome, lines = run_pipeline(
        executor, git_repo, {"pipelines/p/pipeline.yaml": spec, "pipelines/p/main.py": script}
    )
    assert outcome.state is RunState.TIMED_OUT
    assert stdout(lines) == ["sleeping"]
    assert outcome.duration_s is not None and 2.0 <= outcome.duration_s <= 3.0


def test_allocating_past_the_memory_limit_ends_oom(
    executor: DockerExecutor, git_repo: GitRepo
) -> None:
    spec = "network: none\nresources: {memory: 64Mi}\n"
    script = "hog = []\nwhile True:\n    hog.append(bytearray(8 * 2**20))\n"
    outcome, lines = run_pipeline(
        executor, git_repo, {"pipelines/p/pipeline.yaml": spec, "pipelines/p/main.py": script}
    )
    assert outcome.state is RunState.OOM, (outcome, stderr(lines))
    assert "memory limit" in outcome.message


def test_nonzero_exit_is_failed_and_stderr_is_kept_apart(
    executor: DockerExecutor, git_repo: GitRepo
) -> None:
    script = "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\nsys.exit(7)\n"
    outcome, lines = run_pipeline(
        executor,
        git_repo,
        {"pipelines/p/pipeline.yaml": "network: none\n", "pipelines/p/main.py": script},
    )
    assert (outcome.state, outcome.exit_code) == (RunState.FAILED, 7)
    assert stdout(lines) == ["to out"]
    assert stderr(lines) == "to err"


def test_unreachable_engine_is_an_error_outcome_naming_the_cause(
    tmp_path: Path, git_repo: GitRepo
) -> None:
    require_engine()
    settings = DockerSettings(
        instance="test-refused", data_dir=tmp_path / "data", base_url="tcp://127.0.0.1:9"
    )
    executor = DockerExecutor(settings)
    outcome, _ = run_pipeline(
        executor,
        git_repo,
        {"pipelines/p/pipeline.yaml": "network: none\n", "pipelines/p/main.py": ""},
    )
    assert outcome.state is RunState.ERROR
    assert "does not answer" in outcome.message and "127.0.0.1:9" in outcome.message


def test_direct_socket_needs_an_explicit_flag(tmp_path: Path) -> None:
    from reconciler.errors import LaunchError

    with pytest.raises(LaunchError, match="allow-direct-socket"):
        DockerExecutor(
            DockerSettings(instance="x", data_dir=tmp_path, base_url="unix:///var/run/docker.sock")
        )
