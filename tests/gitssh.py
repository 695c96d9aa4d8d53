"""A real OpenSSH server on 127.0.0.1 for ``ssh://`` Git remotes (Debian ``openssh-server``).

It runs as the current user (root in CI) with its own host key and one authorized client key,
both generated per test, so nothing on the machine is trusted or changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gitdaemon import free_port, wait_for_port

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SshServer:
    base: str  # ssh://root@127.0.0.1:PORT
    client_key: Path  # private key the server accepts (public key next to it)
    known_hosts: Path  # a known_hosts file with the server's real host key
    port: int


def require_sshd() -> None:
    """Fail in CI (scripts/setup installs openssh-server), skip loudly elsewhere."""
    if Path(SSHD).is_file() and shutil.which("ssh-keygen"):
        return
    problem = "NO sshd (Debian openssh-server); run scripts/setup"
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)], check=True
    )
    return path


@contextmanager
def sshd(folder: Path) -> Iterator[SshServer]:
    require_sshd()
    folder.mkdir(parents=True, exist_ok=True)
    host_key = keygen(folder / "host_key")
    client = keygen(folder / "client_key")
    authorized = folder / "authorized_keys"
    shutil.copyfile(f"{client}.pub", authorized)
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"PermitRootLogin prohibit-password\nPidFile {folder / 'sshd.pid'}\n"
    )
    known_hosts = folder / "known_hosts"
    public = (folder / "host_key.pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    process = subprocess.Popen(
        [SSHD, "-D", "-f", str(config), "-E", str(folder / "sshd.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, "sshd", folder / "sshd.log")
        user = os.environ.get("USER") or "root"
        yield SshServer(f"ssh://{user}@127.0.0.1:{port}", client, known_hosts, port)
    finally:
        process.terminate()
        process.wait(timeout=10)
