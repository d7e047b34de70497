"""Temporary names for atomic writes, made with the modes ordinary files and directories get.

A file or directory is written under a temporary name beside its target and renamed into place
(``os.replace``), so readers never see it half-written; a directory that replaces another is swapped
with it in one step (:func:`exchange`), so readers never find the name empty either. ``tempfile.mkstemp`` and ``mkdtemp`` make
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


#: ``renameat2``'s flag that swaps two paths in one step (Linux 3.15+, glibc 2.28+) ...
_RENAME_EXCHANGE = 2
#: ... and ``renamex_np``'s on macOS.
_RENAME_SWAP = 2
_AT_FDCWD = -100


def _swap_call():
    """The C function that swaps two paths atomically here, with its calling convention; None where there is none."""
    import ctypes
    import sys

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        return lambda a, b: libc.renameat2(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE)
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        return lambda a, b: libc.renamex_np(a, b, _RENAME_SWAP)
    return None


def exchange(first: Path, second: Path) -> bool:
    """Swap ``first`` and ``second`` (two existing paths on one file system) in one atomic step.

    This is how a directory is replaced by another without a moment where neither is there:
    ``os.replace`` cannot move a directory over a non-empty one, and renaming the old one aside
    first leaves its name empty until the new one arrives. Returns False where the system or file
    system cannot swap (not Linux or macOS, an old kernel, a file system without it); the caller then
    falls back to two renames. Any other failure (a path missing, no permission) is an ``OSError``.
    """
    import ctypes
    import errno

    call = _swap_call()
    if call is None:
        return False
    if call(os.fsencode(first), os.fsencode(second)) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))
