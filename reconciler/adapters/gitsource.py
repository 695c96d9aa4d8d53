"""The source: a bare mirror of the desired-state repository in the data dir, fetched with pygit2.

The source is a local path (watched for pushes, see ``adapters.watcher``) or a URL (``file://``,
``git://``, ``http(s)://``, ``ssh://`` with a key from ``FASTFLOW_GIT_SSH_KEY``) fetched on an
interval and on webhooks. Every fetch mirrors all branches (``+refs/heads/*``, pruned), so
force-pushes and deleted branches show up as they are. Credentials in URLs are scrubbed from
every message.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2

from reconciler.errors import SourceUnavailableError

logger = logging.getLogger(__name__)
HEADS = "refs/heads/"
TRAILER = re.compile(r"^Fastflow-Run:\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def scrub(text: str) -> str:
    """Remove ``user:password@`` from every URL in ``text``."""
    return _USERINFO.sub("***@", text)


@dataclass(frozen=True)
class SshKey:
    private: str
    public: str | None = None
    passphrase: str = ""


class _Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, key: SshKey | None) -> None:
        super().__init__()
        self._key = key

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: pygit2.enums.CredentialType
    ) -> pygit2.Keypair:
        if self._key is not None and allowed_types & pygit2.enums.CredentialType.SSH_KEY:
            public = self._key.public or f"{self._key.private}.pub"
            return pygit2.Keypair(
                username_from_url or "git", public, self._key.private, self._key.passphrase
            )
        raise SourceUnavailableError(
            f"the remote {scrub(url)} asks for credentials and none are configured"
        )


class GitSource:
    def __init__(self, location: str, mirror: Path, ssh_key: SshKey | None = None) -> None:
        self.location = location
        self.mirror_path = mirror
        self.callbacks = _Callbacks(ssh_key)
        local = Path(location).expanduser()
        self.local_path: Path | None = (
            local.resolve() if "://" not in location and local.exists() else None
        )
        self.url = str(self.local_path) if self.local_path else location
        self.repo = self._open_mirror()

    def __repr__(self) -> str:
        return f"GitSource({scrub(self.location)!r})"

    @property
    def display(self) -> str:
        return scrub(self.location)

    def _open_mirror(self) -> pygit2.Repository:
        if (self.mirror_path / "HEAD").is_file():
            return pygit2.Repository(str(self.mirror_path))
        self.mirror_path.parent.mkdir(parents=True, exist_ok=True)
        return pygit2.init_repository(str(self.mirror_path), bare=True)

    def watch_dir(self) -> Path | None:
        """The Git directory to watch for pushes (local sources only)."""
        if self.local_path is None:
            return None
        dot_git = self.local_path / ".git"
        return dot_git if dot_git.is_dir() else self.local_path

    def fetch(self) -> dict[str, str]:
        """Mirror every branch; returns ``branch -> commit id`` after the fetch."""
        remote = self.repo.remotes.create_anonymous(self.url)
        try:
            remote.fetch(
                [f"+{HEADS}*:{HEADS}*"],
                callbacks=self.callbacks,
                prune=pygit2.enums.FetchPrune.PRUNE,
            )
        except (pygit2.GitError, OSError, KeyError) as exc:
            raise SourceUnavailableError(
                f"cannot fetch {self.display}: {scrub(str(exc))}"
            ) from None
        return self.heads()

    def heads(self) -> dict[str, str]:
        found = {}
        for name in self.repo.references:
            if name.startswith(HEADS):
                target = self.repo.references[name].peel(pygit2.Commit)
                found[name[len(HEADS) :]] = str(target.id)
        return found

    def new_commits(self, old: str | None, new: str, limit: int = 100) -> list[pygit2.Commit]:
        """Commits reachable from ``new`` but not from ``old``, oldest first (just ``new`` when
        ``old`` is unknown or was force-pushed away)."""
        head = self.repo[new]
        assert isinstance(head, pygit2.Commit)
        if old is None or old not in self.repo or not self.repo.descendant_of(new, old):
            return [head]
        walker = self.repo.walk(
            head.id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE
        )
        walker.hide(old)
        commits = list(walker)
        return commits[-limit:]


def run_trailers(commit: pygit2.Commit) -> list[str]:
    """Pipelines named by ``Fastflow-Run:`` trailers in the commit message's last paragraph."""
    paragraphs = [p for p in commit.message.strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return []
    names: list[str] = []
    for match in TRAILER.finditer(paragraphs[-1]):
        names += [n.strip() for n in match.group(1).split(",") if n.strip()]
    return list(dict.fromkeys(names))


def iter_branches(heads: dict[str, str]) -> Iterator[tuple[str, str]]:
    yield from sorted(heads.items())


def ssh_key_from_env(env: dict[str, str] | None = None) -> SshKey | None:
    source = os.environ if env is None else env
    private = source.get("FASTFLOW_GIT_SSH_KEY")
    if not private:
        return None
    return SshKey(
        private,
        source.get("FASTFLOW_GIT_SSH_PUBKEY"),
        source.get("FASTFLOW_GIT_SSH_PASSPHRASE", ""),
    )
