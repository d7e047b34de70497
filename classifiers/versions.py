"""Every version of a model, kept: candidates, the current one, and the ones it replaced.

In a models directory, ``<name>/`` is the current artifact (what the registry loads).
Beside it, hidden from the registry:

``.candidates/<name>/<version>/``  trained, not yet promoted (``replyguard train --candidate``)
``.candidates/<name>/.<version>.lock``  held by the one ``train`` writing that candidate
``.history/<name>/<version>/``      every version that was current before
``.history/<name>/versions.json``   ``{"stack": [...], "events": [...]}``: versions replaced by a promotion,
                                    most recent last (what ``rollback`` restores), and an audit log

Promotion and rollback swap the new current directory with the old one in one step (``renameat2``
``RENAME_EXCHANGE``, :func:`classifiers.atomic.exchange`; two ``os.replace`` where the system cannot), so a
worker starting meanwhile loads one version or the other, never finds none, and
hold an exclusive lock on ``.history/<name>.lock`` while they read and change the versions, so
two at once (two operators, a deploy script and a person) run one after the other instead of
interleaving their renames and losing an entry of the log; writing a candidate takes the same lock, and
a candidate version has one writer at a time (a second ``train`` of it fails at once, naming it).
Nothing is ever deleted. Whether a candidate is good enough is decided above this layer
(``eval.promotion``); this module only keeps the versions.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from classifiers.atomic import exchange, new_file
from classifiers.errors import ArtifactError, ConfigError
from classifiers.persistence import Manifest, read_manifest

#: A version names a directory (``.candidates/<name>/<version>``): letters, digits, '.', '_', '+', '-'; no path.
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")
VERSION_RULE = "letters, digits, '.', '_', '+' and '-', starting with a letter or digit, at most 128"
CANDIDATES = ".candidates"
HISTORY = ".history"
LOG = "versions.json"


class ModelVersions:
    """The versions of model ``name`` in the models directory ``root``."""

    def __init__(self, root: Path, name: str):
        self.root, self.name = Path(root), name
        self.current_dir = self.root / name
        self.candidates_dir = self.root / CANDIDATES / name
        self.history_dir = self.root / HISTORY / name

    # -- reading ------------------------------------------------------------------
    def current(self) -> Manifest | None:
        return read_manifest(self.current_dir) if (self.current_dir / "manifest.json").is_file() else None

    def _listing(self, directory: Path) -> list[Manifest]:
        if not directory.is_dir():
            return []
        found = [
            read_manifest(d)
            for d in directory.iterdir()
            if not d.name.startswith(".") and (d / "manifest.json").is_file()  # not a version being written
        ]
        return sorted(found, key=lambda m: (m.created_at, m.version))

    def candidates(self) -> list[Manifest]:
        return self._listing(self.candidates_dir)

    def history(self) -> list[Manifest]:
        return self._listing(self.history_dir)

    def log(self) -> dict[str, Any]:
        path = self.history_dir / LOG
        if not path.is_file():
            return {"stack": [], "events": []}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(path, f"version log is unreadable: {exc}") from exc

    def candidate_dir(self, version: str | None = None) -> Path:
        """The directory of candidate ``version`` (default: the newest candidate)."""
        if version is None:
            listed = self.candidates()
            if not listed:
                raise ConfigError(
                    f"model {self.name!r} has no candidate in {self.candidates_dir} "
                    "(train one with replyguard train --candidate)"
                )
            version = listed[-1].version
        check_version(version)
        path = self.candidates_dir / version
        if not (path / "manifest.json").is_file():
            raise ConfigError(f"model {self.name!r} has no candidate version {version!r} in {self.candidates_dir}")
        return path

    # -- changing -----------------------------------------------------------------
    @contextmanager
    def changing(self) -> Iterator[None]:
        """Hold the model's exclusive lock (blocking until another promotion, rollback or candidate write ends)."""
        lock_path = self.root / HISTORY / f"{self.name}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def claiming_candidate(self, version: str, *, force: bool = False) -> Iterator[str | None]:
        """Hold candidate ``version`` for one writer while it trains and writes it (the write itself under
        :meth:`changing`, so a promotion or rollback of the model waits for it, and it for them).

        A second writer of the same version (another ``train --candidate`` of the same data and config, or the
        same ``--version``) fails at once with a ConfigError naming it, instead of both training and one
        silently replacing the other; different versions train side by side. A candidate already there is
        refused unless ``force``. Yields what the new candidate replaces, as a line for people (None: nothing).
        """
        check_version(version)
        path = self.candidates_dir / version
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.candidates_dir / f".{version}.lock", "a", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise ConfigError(
                    f"another replyguard train is writing candidate {self.name}@{version} into {path} now; "
                    "nothing trained here. Wait for it to finish (replyguard models list shows it), "
                    "or give another --version"
                ) from exc
            try:
                yield self._existing_candidate(version, force=force)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _existing_candidate(self, version: str, *, force: bool) -> str | None:
        path = self.candidates_dir / version
        if not path.exists() and not path.is_symlink():
            return None
        try:
            there = read_manifest(path)
            what = f"candidate {there.ref}, trained {there.created_at:%Y-%m-%d %H:%M} UTC"
        except ArtifactError:
            what = "a candidate directory whose manifest is unreadable"
        if not force:
            raise ConfigError(
                f"{path} already holds {what}; training {self.name}@{version} would replace it. Promote it first "
                f"(replyguard models promote {self.name} --version {version} --data HELD_OUT), "
                "give another --version, or add --force to replace it"
            )
        return f"replaced {what} (--force)"

    def _write_log(self, log: dict[str, Any]) -> None:
        self.history_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = new_file(self.history_dir, f".{LOG}.")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(log, indent=2) + "\n")
        os.replace(tmp, self.history_dir / LOG)

    def _retire_current(self) -> str | None:
        current = self.current()
        if current is None:
            return None
        self.history_dir.mkdir(parents=True, exist_ok=True)
        target = self.history_dir / current.version
        if target.exists():  # the same version was current before: keep the older copy
            shutil.rmtree(self.current_dir)
        else:
            os.replace(self.current_dir, target)
        return current.version

    def _swap_in(self, source: Path) -> str | None:
        """Make directory ``source`` the current version; the one it replaces goes to the history (its version
        is returned). The two are swapped in one step where the system can (:func:`classifiers.atomic.exchange`),
        so a worker starting at that moment loads the old version or the new one, never finds neither."""
        current = self.current()
        if current is None:
            os.replace(source, self.current_dir)
            return None
        if not exchange(source, self.current_dir):
            retired = self._retire_current()  # no swap here: the old one aside, then the new one in
            os.replace(source, self.current_dir)
            return retired
        target = self.history_dir / current.version  # ``source`` now holds the version that was current
        if target.exists():  # the same version was current before: keep the older copy
            shutil.rmtree(source)
        else:
            self.history_dir.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        return current.version

    def promote(
        self, version: str | None = None, *, note: str = "", checked: Manifest | None = None, action: str = "promote"
    ) -> Manifest:
        """Make candidate ``version`` current; the current one goes to the history (rollback restores it).

        ``checked``: the candidate's manifest as it was checked; a candidate replaced since (``train --candidate
        --force`` of the same version) is refused, so what becomes current is what was checked. ``action``: what
        the log calls it (``train``: ``replyguard train`` without ``--candidate`` made a new version current)."""
        with self.changing():
            return self._promote(version, note, checked, action)

    def _promote(
        self, version: str | None, note: str, checked: Manifest | None = None, action: str = "promote"
    ) -> Manifest:
        source = self.candidate_dir(version)
        candidate = read_manifest(source)
        if candidate.name != self.name:
            raise ArtifactError(source / "manifest.json", f"is model {candidate.name!r}, not {self.name!r}")
        if checked is not None and (candidate.model_sha256, candidate.created_at) != (
            checked.model_sha256,
            checked.created_at,
        ):
            raise ConfigError(
                f"candidate {candidate.ref} was replaced while it was being checked (trained again at "
                f"{candidate.created_at:%Y-%m-%d %H:%M:%S} UTC); nothing promoted: run the promotion again"
            )
        log = self.log()
        retired = self._swap_in(source)
        if retired is not None:
            log["stack"].append(retired)
        log["events"].append(
            {"at": _now(), "action": action, "version": candidate.version, "replaced": retired, "note": note}
        )
        self._write_log(log)
        return candidate

    def rollback(self) -> Manifest:
        """Restore the version the last promotion replaced; the current one is kept in the history."""
        with self.changing():
            return self._rollback()

    def _rollback(self) -> Manifest:
        log = self.log()
        if not log["stack"]:
            raise ConfigError(f"model {self.name!r} has no earlier version to roll back to")
        version = log["stack"].pop()
        source = self.history_dir / version
        if not (source / "manifest.json").is_file():
            raise ArtifactError(source, "the version to roll back to is missing from the history")
        retired = self._swap_in(source)
        log["events"].append({"at": _now(), "action": "rollback", "version": version, "replaced": retired})
        self._write_log(log)
        return read_manifest(self.current_dir)


def check_version(version: str) -> None:
    """A ConfigError unless ``version`` can name a version's directory (no path, nothing hidden)."""
    if not VERSION.match(version):
        raise ConfigError(f"version {version!r} is not a version name: {VERSION_RULE}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def names(root: Path) -> list[str]:
    """Model names with a current version, a candidate or an earlier version in ``root`` (a model whose current
    directory was removed is still listed, so its earlier versions can be found and rolled back to)."""
    root = Path(root)
    found = (
        {
            d.name
            for d in root.iterdir()
            if d.is_dir() and not d.name.startswith(".") and (d / "manifest.json").is_file()
        }
        if root.is_dir()
        else set()
    )
    for kept in (CANDIDATES, HISTORY):
        if (root / kept).is_dir():
            found |= {d.name for d in (root / kept).iterdir() if d.is_dir() and not d.name.startswith(".")}
    return sorted(found)
