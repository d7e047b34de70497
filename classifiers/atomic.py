"""Temporary names for atomic writes, made with the modes ordinary files and directories get.

A file or directory is written under a temporary name beside its target and renamed into place
(``os.replace``), so readers never see it half-written. ``tempfile.mkstemp`` and ``mkdtemp`` make
their files ``0600`` and directories ``0700`` whatever the umask: renamed into place, a model
trained by one user (a deploy user) was unreadable by a worker running as another (a service
user). The names made here get what ``open(path, "w")`` and ``mkdir`` give: ``0666`` and ``0777``
less the process umask (``0644`` / ``0755`` with the usual ``022``; ``umask 027`` keeps them to
the group). Nothing secret is written this way: model files hold the fitted estimator (n-grams seen
in at least two training texts, weights), manifests the config, data hashes and metrics; reports
hold figures and labels.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

_ATTEMPTS = 100


def _name(parent: Path, prefix: str, suffix: str) -> Path:
    return parent / f"{prefix}{secrets.token_hex(6)}{suffix}"


def new_directory(parent: Path, prefix: str, suffix: str = ".tmp") -> Path:
    """A new, empty directory in ``parent`` with a name no one else has, mode ``0777`` less the umask."""
    for _ in range(_ATTEMPTS):
        path = _name(Path(parent), prefix, suffix)
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name for {prefix}*{suffix} in {parent}")


def new_file(parent: Path, prefix: str, suffix: str = ".tmp") -> tuple[int, Path]:
    """A new, empty file in ``parent`` opened for writing (its descriptor and path), mode ``0666`` less the umask."""
    for _ in range(_ATTEMPTS):
        path = _name(Path(parent), prefix, suffix)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        return fd, path
    raise FileExistsError(f"no free temporary name for {prefix}*{suffix} in {parent}")
