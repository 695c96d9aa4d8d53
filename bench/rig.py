"""What the benchmarks share: the docker-py arguments of a bare launch of the same container the
executor would start (same image, command, mounts and limits), the baseline of launch ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COMMAND = ["uv", "run", "--no-project", "--script", "/app/main.py"]


def bare_run_kwargs(workspace: Path, cache: Path, *, memory: int, pids: int) -> dict[str, Any]:
    """``containers.run`` keyword arguments equivalent to the executor's container."""
    return {
        "detach": True,
        "user": "10001:10001",
        "working_dir": "/app",
        "environment": {"UV_OFFLINE": "1", "HOME": "/tmp", "UV_CACHE_DIR": "/uv-cache"},
        "volumes": {
            str(workspace): {"bind": "/app", "mode": "ro"},
            str(cache): {"bind": "/uv-cache", "mode": "rw"},
        },
        "tmpfs": {"/tmp": f"rw,exec,nosuid,nodev,size={memory}"},
        "mem_limit": memory,
        "memswap_limit": memory,
        "nano_cpus": 10**9,
        "pids_limit": pids,
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
        "read_only": True,
        "network_mode": "none",
    }
