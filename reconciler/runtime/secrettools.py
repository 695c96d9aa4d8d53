"""``fastflow secrets``: make keys, encrypt values and files, rotate, and check a repository.

SOPS rotation has two different tools, and ``rotate`` uses them deliberately:

* ``sops updatekeys``: re-wraps the file's *data key* for the recipients ``.sops.yaml`` lists
  now. Use it after adding a recipient (a new teammate or server): values are unchanged.
* ``sops rotate``: makes a *new data key* and re-encrypts every value. Use it after removing a
  recipient or when a key may have leaked: the old data key (which a removed recipient could
  have kept) no longer opens the file. ``rotate --new-data-key`` runs both, in that order.

Fernet rotation re-encrypts every token with the newest key of ``FASTFLOW_FERNET_KEYS``.
Plaintext never goes to disk here except where the user asks to encrypt a plaintext file in place.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from reconciler.adapters import sops
from reconciler.adapters.fernet import FernetKeys, generate_key
from reconciler.adapters.fstree import directory_reader, load_directory
from reconciler.core.redacting import MIN_LENGTH
from reconciler.core.sources import FERNET_FILE, PIPELINES_DIR, SHARED_DIR, SOPS_FILE
from reconciler.errors import InvalidInputError
from reconciler.runtime.unlocking import Unlocker

_TOKEN_LINE = re.compile(
    r"^(?P<head>\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*:\s*)(?P<q>[\"']?)(?P<token>gAAAAA[A-Za-z0-9_\-=]+)(?P=q)"
)


def fernet_keygen() -> str:
    return generate_key()


def age_keygen() -> str:
    """A new age identity (the file ``age-keygen`` writes: comment lines + ``AGE-SECRET-KEY-...``)."""
    binary = shutil.which("age-keygen")
    if binary is None:
        raise InvalidInputError("age-keygen is not installed (Debian package `age`)")
    done = subprocess.run([binary], capture_output=True, text=True, check=True, timeout=30)
    return done.stdout


def encrypt_value(value: str, env: Mapping[str, str] | None = None) -> str:
    return FernetKeys.from_env(env).encrypt(value)


def encrypt_fernet_file(path: Path, env: Mapping[str, str] | None = None) -> int:
    """Encrypt every plaintext ``KEY: value`` of a YAML file in place; returns how many."""
    keys = FernetKeys.from_env(env)
    document = yaml.safe_load(path.read_text()) or {}
    if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
        raise InvalidInputError(f"{path}: expected a mapping of KEY: string value")
    encrypted = {k: v if v.startswith("gAAAAA") else keys.encrypt(v) for k, v in document.items()}
    path.write_text("".join(f"{k}: {v}\n" for k, v in encrypted.items()))
    return sum(1 for k, v in document.items() if encrypted[k] != v)


def sops_config_dir(path: Path) -> Path:
    """The folder holding the ``.sops.yaml`` that applies to ``path`` (searched upwards)."""
    for folder in [path.resolve().parent, *path.resolve().parents]:
        if (folder / ".sops.yaml").is_file():
            return folder
    raise InvalidInputError(
        f"no .sops.yaml above {path}: sops needs creation rules to know the recipients"
    )


def sops_in_place(action: list[str], path: Path, env: Mapping[str, str] | None = None) -> None:
    """Run ``sops <action> <file>`` from the folder of the applicable ``.sops.yaml``."""
    root = sops_config_dir(path)
    sops.run_sops([*action, str(path.resolve().relative_to(root))], env=env, cwd=str(root))


def encrypt_sops_file(path: Path, env: Mapping[str, str] | None = None) -> None:
    sops_in_place(["encrypt", "--in-place"], path, env)


@dataclass(frozen=True)
class Rotated:
    path: Path
    what: str


def secret_files(repo: Path, name: str) -> Iterator[Path]:
    """Every ``pipelines/*/<name>`` and the shared ``secrets/*.<suffix>`` of the same kind
    (``name`` is ``secrets.sops.yaml`` or ``secrets.fernet.yaml``)."""
    found = list((repo / PIPELINES_DIR).glob(f"*/{name}"))
    found += (repo / SHARED_DIR).glob(f"*.{name.removeprefix('secrets.')}")
    yield from sorted(p for p in found if p.is_file() and not p.is_symlink())


def rotate_fernet(repo: Path, env: Mapping[str, str] | None = None) -> list[Rotated]:
    keys = FernetKeys.from_env(env)
    done = []
    for path in secret_files(repo, FERNET_FILE):
        lines = path.read_text().splitlines(keepends=True)
        count = 0
        for index, line in enumerate(lines):
            match = _TOKEN_LINE.match(line)
            if match:
                new = keys.rotate(match["token"])
                lines[index] = line[: match.start("token")] + new + line[match.end("token") :]
                count += 1
        path.write_text("".join(lines))
        done.append(Rotated(path, f"{count} value(s) re-encrypted with the newest Fernet key"))
    return done


def rotate_sops(
    repo: Path, *, new_data_key: bool, env: Mapping[str, str] | None = None
) -> list[Rotated]:
    done = []
    for path in secret_files(repo, SOPS_FILE):
        sops_in_place(["updatekeys", "--yes"], path, env)
        what = "recipients updated from .sops.yaml (sops updatekeys)"
        if new_data_key:
            sops_in_place(["rotate", "--in-place"], path, env)
            what += "; new data key, every value re-encrypted (sops rotate)"
        done.append(Rotated(path, what))
    return done


def expected_recipients(root: Path, path: Path) -> list[str] | None:
    """The age recipients ``.sops.yaml``'s first matching creation rule asks for."""
    config = root / ".sops.yaml"
    if not config.is_file():
        return None
    rules = (yaml.safe_load(config.read_text()) or {}).get("creation_rules") or []
    relative = str(path.resolve().relative_to(root.resolve()))
    for rule in rules:
        if isinstance(rule, dict) and re.search(str(rule.get("path_regex", "")), relative):
            age = rule.get("age") or ""
            items = age if isinstance(age, list) else str(age).split(",")
            return sorted(r.strip() for r in items if r.strip())
    return None


def check(repo: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """Problems: recipients that differ from ``.sops.yaml``, secrets that do not decrypt, short values."""
    found: list[str] = []
    for path in secret_files(repo, SOPS_FILE):
        try:
            root = sops_config_dir(path)
        except InvalidInputError as exc:
            found.append(f"{path.relative_to(repo)}: {exc}")
            continue
        expected = expected_recipients(root, path)
        actual = sops.recipients(path.read_bytes())
        if expected is not None and expected != actual:
            found.append(
                f"{path.relative_to(repo)}: recipients {actual} differ from .sops.yaml {expected}; "
                "run `fastflow secrets rotate` (sops updatekeys)"
            )
    state = load_directory(repo)
    unlocked, values = Unlocker(env).unlock(state, directory_reader(repo))
    found += [str(p) for p in unlocked.problems if p not in state.problems]
    found += [str(p) for p in state.problems]
    for pipeline, secrets in values.items():
        for name, value in secrets.items():
            if len(value.reveal()) < MIN_LENGTH:
                found.append(
                    f"{PIPELINES_DIR}/{pipeline}: secret {name!r} is shorter than {MIN_LENGTH} characters "
                    "and cannot be masked in logs"
                )
    return found
