"""The source over every transport it claims: path, git://, http(s):// with credentials, ssh:// with
a key and strict host keys; and notes pushed back over the same transports.

Real servers only: `git daemon`, `git http-backend` behind Basic auth (and TLS from a throw-away
CA), OpenSSH's `sshd`. Every failure must name its cause and never show a credential.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.gitnotes import NoteStore
from reconciler.adapters.gitsource import GitAuth, GitSource, SshKey, git_auth_from_env, scrub
from reconciler.errors import SourceUnavailableError
from tests import githttp
from tests.gitdaemon import git_daemon, served_copy
from tests.githttp import git_http, tls_pair
from tests.gitssh import sshd

TOKEN = "tok-CANARY-7f3a9c"  # a forge token; must never appear in any message
FILES = {"pipelines/hi/pipeline.yaml": "network: none\n", "pipelines/hi/main.py": "print(1)\n"}


@pytest.fixture
def served(tmp_path: Path) -> Path:
    return served_copy(tmp_path, FILES)


@pytest.fixture(autouse=True)
def _libgit2_home(tmp_path: Path) -> Iterator[None]:
    """libgit2 reads known_hosts from its home directory: start every test from an empty one
    (never the machine's ~/.ssh) and put the process-wide setting back afterwards."""
    before = pygit2.settings.homedir
    empty = tmp_path / "empty-home"
    empty.mkdir()
    pygit2.settings.homedir = str(empty)
    yield
    pygit2.settings.homedir = before


def remote_head(served: Path) -> str:
    repo = pygit2.Repository(str(served / "origin.git"))
    return str(repo.references["refs/heads/main"].target)


def fetch_error(source: GitSource) -> str:
    with pytest.raises(SourceUnavailableError) as caught:
        source.fetch()
    message = str(caught.value)
    assert TOKEN not in message and TOKEN not in repr(caught.value)
    return message


def test_plain_path_and_git_daemon(tmp_path: Path, served: Path) -> None:
    assert GitSource(str(served / "origin.git"), tmp_path / "m1").fetch() == {
        "main": remote_head(served)
    }
    with git_daemon(served) as base:
        assert GitSource(f"{base}/origin.git", tmp_path / "m2").fetch() == {
            "main": remote_head(served)
        }


def test_http_with_a_token_from_the_environment_or_the_url(tmp_path: Path, served: Path) -> None:
    with git_http(served, "fastflow", TOKEN) as base:
        auth = git_auth_from_env(
            {"FASTFLOW_GIT_USERNAME": "fastflow", "FASTFLOW_GIT_PASSWORD": TOKEN}
        )
        assert TOKEN not in repr(auth)
        env_source = GitSource(f"{base}/origin.git", tmp_path / "m1", auth)
        assert env_source.fetch() == {"main": remote_head(served)}
        url = base.replace("://", f"://fastflow:{TOKEN}@") + "/origin.git"
        url_source = GitSource(url, tmp_path / "m2")
        assert url_source.fetch() == {"main": remote_head(served)}
        assert TOKEN not in repr(url_source) and TOKEN not in url_source.display


def test_http_refusals_name_the_cause_once_and_hide_the_token(tmp_path: Path, served: Path) -> None:
    with git_http(served, "fastflow", "the-right-one") as base:
        none = fetch_error(GitSource(f"{base}/origin.git", tmp_path / "m1"))
        assert "asks for credentials and none are configured (set FASTFLOW_GIT_PASSWORD)" in none
        githttp.REQUESTS.clear()
        wrong = GitAuth(username="fastflow", password=TOKEN)
        message = fetch_error(GitSource(f"{base}/origin.git", tmp_path / "m2", wrong))
        assert "rejected the configured credentials" in message
        assert len(githttp.REQUESTS) <= 3  # offered once, not retried in a loop
        url = base.replace("://", f"://fastflow:{TOKEN}@") + "/origin.git"
        message = fetch_error(GitSource(url, tmp_path / "m3"))
        assert "rejected the credentials in its URL" in message and "***@" in message


def test_https_needs_a_trusted_ca_and_ssl_cert_file_provides_it(
    tmp_path: Path, served: Path
) -> None:
    context, ca_file = tls_pair(tmp_path / "tls")
    with git_http(served, "fastflow", TOKEN, tls=context) as base:
        auth = GitAuth(username="fastflow", password=TOKEN)
        message = fetch_error(GitSource(f"{base}/origin.git", tmp_path / "m1", auth))
        assert "TLS certificate of 127.0.0.1 is not trusted" in message
        assert "SSL_CERT_FILE" in message
        # the documented setting, in a fresh process as in production (libgit2 reads it at start)
        script = (
            "import json, sys\n"
            "from pathlib import Path\n"
            "from reconciler.adapters.gitsource import GitSource, git_auth_from_env\n"
            "source = GitSource(sys.argv[1], Path(sys.argv[2]), git_auth_from_env())\n"
            "print(json.dumps(source.fetch()))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, f"{base}/origin.git", str(tmp_path / "m2")],
            env={
                "SSL_CERT_FILE": str(ca_file),
                "FASTFLOW_GIT_USERNAME": "fastflow",
                "FASTFLOW_GIT_PASSWORD": TOKEN,
                "PATH": "/usr/bin:/bin",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"main": remote_head(served)}


def test_ssh_with_a_key_and_a_known_host(tmp_path: Path, served: Path) -> None:
    with sshd(tmp_path / "sshd") as server:
        url = f"{server.base}{served / 'origin.git'}"
        auth = git_auth_from_env(
            {
                "FASTFLOW_GIT_SSH_KEY": str(server.client_key),
                "FASTFLOW_GIT_SSH_KNOWN_HOSTS": str(server.known_hosts),
            }
        )
        source = GitSource(url, tmp_path / "data" / "mirror.git", auth)
        assert source.fetch() == {"main": remote_head(served)}
        copied = tmp_path / "data" / "ssh-home" / ".ssh" / "known_hosts"
        assert copied.read_text() == server.known_hosts.read_text()


def test_ssh_refuses_an_unknown_or_changed_host_key(tmp_path: Path, served: Path) -> None:
    with sshd(tmp_path / "sshd") as server:
        url = f"{server.base}{served / 'origin.git'}"
        key = SshKey(str(server.client_key))
        message = fetch_error(GitSource(url, tmp_path / "m1", GitAuth(ssh_key=key)))
        assert "SSH host key of 127.0.0.1 is unknown or has changed" in message
        assert "known_hosts" in message
        impostor = tmp_path / "impostor"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", impostor], check=True)
        wrong_hosts = tmp_path / "wrong_known_hosts"
        kind, blob = Path(f"{impostor}.pub").read_text().split()[:2]
        wrong_hosts.write_text(f"[127.0.0.1]:{server.port} {kind} {blob}\n")
        changed = GitAuth(ssh_key=key, known_hosts=wrong_hosts)
        message = fetch_error(GitSource(url, tmp_path / "data2" / "mirror.git", changed))
        assert "unknown or has changed" in message


def test_ssh_without_a_key_or_with_a_foreign_key(tmp_path: Path, served: Path) -> None:
    with sshd(tmp_path / "sshd") as server:
        url = f"{server.base}{served / 'origin.git'}"
        hosts = server.known_hosts
        message = fetch_error(GitSource(url, tmp_path / "d1" / "m", GitAuth(known_hosts=hosts)))
        assert "none are configured (set FASTFLOW_GIT_SSH_KEY)" in message
        foreign = tmp_path / "foreign"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", foreign], check=True)
        auth = GitAuth(ssh_key=SshKey(str(foreign)), known_hosts=hosts)
        message = fetch_error(GitSource(url, tmp_path / "d2" / "m", auth))
        assert "rejected the configured credentials" in message


def _note_one_run(source: GitSource) -> str:
    head = source.heads()["main"]
    store = NoteStore(source.mirror_path)
    store.append({head: ['{"at":"2026-11-27T00:00:00Z","kind":"run","pipeline":"hi"}']})
    return head


def _remote_notes(served: Path, head: str) -> str:
    return subprocess.run(
        ["git", "-C", str(served / "origin.git"), "notes", "--ref=fastflow", "show", head],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.parametrize("transport", ["http", "ssh"])
def test_notes_go_back_over_the_same_transport(
    tmp_path: Path, served: Path, transport: str
) -> None:
    if transport == "http":
        with git_http(served, "fastflow", TOKEN) as base:
            auth = GitAuth(username="fastflow", password=TOKEN)
            source = GitSource(f"{base}/origin.git", tmp_path / "m", auth)
            source.fetch()
            head = _note_one_run(source)
            NoteStore(source.mirror_path).sync(source.url, 3, source.remote_callbacks)
    else:
        with sshd(tmp_path / "sshd") as server:
            key = SshKey(str(server.client_key))
            auth = GitAuth(ssh_key=key, known_hosts=server.known_hosts)
            source = GitSource(f"{server.base}{served / 'origin.git'}", tmp_path / "d" / "m", auth)
            source.fetch()
            head = _note_one_run(source)
            NoteStore(source.mirror_path).sync(source.url, 3, source.remote_callbacks)
    assert '"pipeline":"hi"' in _remote_notes(served, head)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://user:tok@example.com/r.git", "https://***@example.com/r.git"),
        (
            "fetch https://tok@example.com/r.git failed",
            "fetch https://***@example.com/r.git failed",
        ),
        ("HTTP://u:p@h/x and git://a:b@h/y", "HTTP://***@h/x and git://***@h/y"),
        ("ssh://git@example.com:22/r.git", "ssh://git@example.com:22/r.git"),
        ("ssh://git:pw@example.com/r.git", "ssh://***@example.com/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)
def test_scrub_masks_credentials_in_every_url(text: str, shown: str) -> None:
    assert scrub(text) == shown
