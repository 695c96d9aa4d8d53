"""The source: a bare mirror of the desired-state repository in the data dir, fetched with pygit2.

The source is a local path (watched for pushes, see ``adapters.watcher``) or a URL (``file://``,
``git://``, ``http(s)://``, ``ssh://``) fetched on an interval and on webhooks. Every fetch
mirrors all branches (``+refs/heads/*``, pruned), so force-pushes and deleted branches show up
as they are.

Credentials (``GitAuth``, from ``FASTFLOW_GIT_*``):

* ``http(s)://``: ``FASTFLOW_GIT_USERNAME`` / ``FASTFLOW_GIT_PASSWORD`` (a forge token), or
  ``user:token@`` in the URL. The environment is preferred: a URL given as ``--repo`` is visible
  to every local user in the process list. TLS certificates are checked against the system CA
  bundle; ``SSL_CERT_FILE`` replaces it (a company CA, a TLS-intercepting proxy).
* ``ssh://``: the private key file ``FASTFLOW_GIT_SSH_KEY`` (public key next to it as ``.pub``
  or ``FASTFLOW_GIT_SSH_PUBKEY``; ``FASTFLOW_GIT_SSH_PASSPHRASE``). Host keys are checked
  strictly: the server's key must be in ``~/.ssh/known_hosts`` of the user running Fast-Flow, or
  in the file ``FASTFLOW_GIT_SSH_KNOWN_HOSTS`` (copied to ``<data>/ssh-home/.ssh/known_hosts``,
  where libgit2 is told to look; libgit2 reads known_hosts only from a home directory). An
  unknown or changed host key fails the fetch, never trusted on first use.

Credentials are offered once per fetch (a rejected one is not retried in a loop) and never
appear in messages: ``user:password@`` is scrubbed from every URL we print.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from reconciler.errors import SourceUnavailableError

logger = logging.getLogger(__name__)
HEADS = "refs/heads/"
TRAILER = re.compile(r"^Fastflow-Run:\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*)://([^/@\s]+)@", re.IGNORECASE)
_SSH_KEY = pygit2.enums.CredentialType.SSH_KEY
_USERPASS = pygit2.enums.CredentialType.USERPASS_PLAINTEXT


def scrub(text: str) -> str:
    """Mask the credentials of every URL in ``text``: all of ``user:password@`` (and of a lone
    ``token@``, which forges accept), except the plain user name of an ``ssh://`` URL."""
    return _USERINFO.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    scheme, userinfo = match.group(1), match.group(2)
    if scheme.lower() == "ssh" and ":" not in userinfo:
        return match.group(0)
    return f"{scheme}://***@"


def _secret_in_url(url: str) -> bool:
    return scrub(url) != url


@dataclass(frozen=True)
class SshKey:
    private: str
    public: str | None = None
    passphrase: str = field(default="", repr=False)


@dataclass(frozen=True)
class GitAuth:
    """What the source may present to a remote; the repr never shows the password."""

    ssh_key: SshKey | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    known_hosts: Path | None = None


class _Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, auth: GitAuth) -> None:
        super().__init__()
        self._auth = auth
        self.offered = False
        self.host_rejected: str | None = None

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: pygit2.enums.CredentialType
    ) -> pygit2.Keypair | pygit2.UserPass:
        shown = scrub(url)
        if self.offered:
            raise SourceUnavailableError(f"the remote {shown} rejected the configured credentials")
        auth = self._auth
        if auth.ssh_key is not None and allowed_types & _SSH_KEY:
            self.offered = True
            key = auth.ssh_key
            return pygit2.Keypair(
                username_from_url or auth.username or "git",
                key.public or f"{key.private}.pub",
                key.private,
                key.passphrase,
            )
        if auth.password is not None and allowed_types & _USERPASS:
            self.offered = True
            return pygit2.UserPass(auth.username or username_from_url or "git", auth.password)
        if _secret_in_url(url):
            raise SourceUnavailableError(f"the remote {shown} rejected the credentials in its URL")
        wanted = "FASTFLOW_GIT_SSH_KEY" if allowed_types & _SSH_KEY else "FASTFLOW_GIT_PASSWORD"
        raise SourceUnavailableError(
            f"the remote {shown} asks for credentials and none are configured (set {wanted})"
        )

    def certificate_check(self, certificate: None, valid: bool, host: bytes | str) -> bool:
        # libgit2 has already checked the TLS chain or the SSH host key against known_hosts;
        # ``valid`` is its verdict, and an unknown host is refused, never trusted on first use.
        if not valid:
            self.host_rejected = host.decode() if isinstance(host, bytes) else host
        return bool(valid)


class GitSource:
    def __init__(self, location: str, mirror: Path, auth: GitAuth | None = None) -> None:
        self.location = location
        self.mirror_path = mirror
        auth = auth or GitAuth()
        if auth.known_hosts is not None:
            _use_known_hosts(auth.known_hosts, mirror.parent / "ssh-home")
        self.auth = auth
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
        callbacks = self.remote_callbacks()
        try:
            remote.fetch(
                [f"+{HEADS}*:{HEADS}*"],
                callbacks=callbacks,
                prune=pygit2.enums.FetchPrune.PRUNE,
            )
        except SourceUnavailableError as exc:
            raise SourceUnavailableError(f"cannot fetch {self.display}: {exc}") from None
        except (pygit2.GitError, OSError, KeyError) as exc:
            raise SourceUnavailableError(
                f"cannot fetch {self.display}: {explain(exc, callbacks, self.url)}"
            ) from None
        return self.heads()

    def remote_callbacks(self) -> pygit2.RemoteCallbacks:
        """Fresh callbacks for one remote operation (credentials are offered once each)."""
        return _Callbacks(self.auth)

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


def explain(exc: BaseException, callbacks: object, url: str) -> str:
    """A libgit2 error as a message a person can act on, without credentials."""
    host = getattr(callbacks, "host_rejected", None)
    if host is None:
        return scrub(str(exc))
    if url.startswith(("http://", "https://")):
        return (
            f"the TLS certificate of {host} is not trusted; point SSL_CERT_FILE at a CA bundle "
            "that includes its issuer"
        )
    return (
        f"the SSH host key of {host} is unknown or has changed; after checking it, add it to "
        "known_hosts (FASTFLOW_GIT_SSH_KNOWN_HOSTS or ~/.ssh/known_hosts), e.g. from `ssh-keyscan`"
    )


def _use_known_hosts(known_hosts: Path, home: Path) -> None:
    """Make libgit2 check SSH host keys against ``known_hosts`` (it only reads
    ``<home>/.ssh/known_hosts``, so the file is copied there and libgit2's home is moved)."""
    target = home / ".ssh" / "known_hosts"
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(known_hosts, target)
    pygit2.settings.homedir = str(home)


def git_auth_from_env(env: dict[str, str] | None = None) -> GitAuth:
    """``FASTFLOW_GIT_SSH_KEY`` (+ ``_SSH_PUBKEY``, ``_SSH_PASSPHRASE``, ``_SSH_KNOWN_HOSTS``),
    ``FASTFLOW_GIT_USERNAME`` and ``FASTFLOW_GIT_PASSWORD``."""
    source = os.environ if env is None else env
    private = source.get("FASTFLOW_GIT_SSH_KEY")
    key = (
        SshKey(
            private,
            source.get("FASTFLOW_GIT_SSH_PUBKEY"),
            source.get("FASTFLOW_GIT_SSH_PASSPHRASE", ""),
        )
        if private
        else None
    )
    known_hosts = source.get("FASTFLOW_GIT_SSH_KNOWN_HOSTS")
    return GitAuth(
        ssh_key=key,
        username=source.get("FASTFLOW_GIT_USERNAME") or None,
        password=source.get("FASTFLOW_GIT_PASSWORD") or None,
        known_hosts=Path(known_hosts) if known_hosts else None,
    )
