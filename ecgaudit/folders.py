"""Output folders written whole: one writer at a time, built aside and swapped in with one rename.

`output_lock` holds an `flock` on `<name>.lock` and `replace_folder` fills a fresh `<name>.new-*` folder, both in
`.ecgaudit/` beside the output (the same filesystem, so the new folder can be swapped in with one rename: an atomic
exchange where the kernel offers it). Until then the previous folder is untouched, after it the new one is
complete, and a kill at any moment leaves one or the other. A finished run removes `.ecgaudit/` again.

Only a SIGKILL (the OOM killer, a CI timeout) can leave `.ecgaudit/` behind, holding a stale lock file and perhaps
an unfinished folder, until the next run on that output removes them. So that nothing picks those up in between,
the folder is hidden, holds a `.gitignore` of `*` (git and the tools that honour it skip it) and a `CACHEDIR.TAG`
(backup and archive tools skip it: tar --exclude-caches, borg, restic), and `actions/upload-artifact` leaves hidden
folders out by default. `ecgaudit.evidence` builds its bundles on these functions.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import glob
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from ecgaudit.errors import OutputError
from ecgaudit.io import current_umask

T = TypeVar("T")
_HELD_LOCKS: dict[Path, int] = {}
"""Output folders this process holds the lock of (resolved path -> lock file descriptor)."""


WORK_FOLDER = ".ecgaudit"
"""Beside every output folder while a run writes it: the lock file and the unfinished folder (see above)."""
_WORK_MARKERS = {
    ".gitignore": b"# Written by ecgaudit: a run's lock and unfinished output, removed when the run ends.\n*\n",
    "CACHEDIR.TAG": b"Signature: 8a477f597d28d172789f06886806bc55\n"
                    b"# This folder holds ecgaudit's unfinished output; nothing in it needs to be kept.\n",
}


def work_folder(out: Path) -> Path:
    return out.parent / WORK_FOLDER


def lock_path(out_dir: Path) -> Path:
    """`.ecgaudit/<name>.lock` beside the output folder (inside it would be swapped away with the folder)."""
    out = out_dir.resolve()
    return work_folder(out) / f"{out.name}.lock"


def _make_work_folder(out: Path) -> None:
    folder = work_folder(out)
    folder.mkdir(exist_ok=True)
    for name, text in _WORK_MARKERS.items():
        if not (folder / name).exists():
            with contextlib.suppress(OSError):
                (folder / name).write_bytes(text)


def _remove_work_folder(out: Path) -> None:
    """Remove `.ecgaudit/` once it holds nothing but its markers. Another run's lock file there (for another output
    in the same folder) keeps it: rmdir refuses a folder that is not empty, and that run recreates the markers."""
    folder = work_folder(out)
    with contextlib.suppress(OSError):
        if set(os.listdir(folder)) <= set(_WORK_MARKERS):
            for name in _WORK_MARKERS:
                (folder / name).unlink(missing_ok=True)
            folder.rmdir()


def resolve_path(path: Path, option: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:
        raise OutputError(f"{option} {path} cannot be resolved ({exc}).") from exc


def check_creatable(folder: Path, what: str) -> None:
    """`folder` exists as a writable folder, or can be created (its nearest existing ancestor is writable)."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{what} cannot be created: {existing} is a file, not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{what} cannot be written: {existing} is not writable; pass a path you can write to.")


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold the output folder's lock; a second scan on the same folder is refused with `OutputError`.

    Re-entrant within one process (a CLI command that holds it can call `write_bundle`, which takes it too).
    While held, leftovers of killed runs beside the folder are cleaned up.
    """
    out = resolve_path(out_dir, "--out")
    if out in _HELD_LOCKS:
        yield
        return
    if out.name == WORK_FOLDER:
        raise OutputError(f"--out {out_dir}: {WORK_FOLDER} is where ecgaudit keeps a run's lock and unfinished "
                          "output beside the folder it writes; pass another name.")
    path = lock_path(out)
    created = []  # the folders made for the lock file; removed again if the run writes nothing
    missing = out.parent
    while not missing.exists() and missing.parent != missing:
        created.append(missing)
        missing = missing.parent
    for attempt in itertools.count():
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            _make_work_folder(out)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and attempt < 100:
                continue  # another run removed an idle .ecgaudit/ between our mkdir and open: make it again
            raise OutputError(f"--out {out_dir} cannot be written: the lock file {path} cannot be created "
                              f"({exc.strerror}).") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(f"another ecgaudit run is writing to {out_dir} (it holds {path}); wait for it "
                                  "to finish or pass another --out.") from exc
            raise OutputError(f"--out {out_dir}: the lock file {path} cannot be locked ({exc.strerror}).") from exc
        # The holder removes the file as it finishes; a file opened just before that is no longer the lock.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    _HELD_LOCKS[out] = fd
    try:
        _clean_leftovers(out)
        yield
    finally:
        del _HELD_LOCKS[out]
        # Removed while still held, so nothing is left beside the folder and no one can lock the old file after.
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
        _remove_work_folder(out)
        if not out.exists():  # a run that failed before writing leaves no trace, not even the parents it made
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()


def replace_folder(out: Path, build: Callable[[Path], T]) -> T:
    """`build(staging)` fills a fresh folder beside `out` (same filesystem), then it is flushed and swapped in.

    The caller holds `output_lock(out)`. Until the swap the old folder is untouched; the staging folder (which
    then holds the old contents) is removed either way.
    """
    staging = Path(tempfile.mkdtemp(prefix=f"{out.name}.new-", dir=work_folder(out)))
    try:
        os.chmod(staging, 0o777 & ~current_umask())
        built = build(staging)
        _fsync_tree(staging)
        _swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return built


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder to disk, so a power cut after the swap cannot leave empty files."""
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_in(staging: Path, out: Path) -> None:
    """Put `staging` at `out` by renames only; afterwards `staging` holds the old bundle (or nothing)."""
    if not out.exists():
        os.rename(staging, out)
    elif not _exchange(staging, out):
        # No atomic exchange here: park the old folder, rename the new one in; a kill between the two renames
        # leaves the old bundle parked, and the next run on this folder puts it back (`_clean_leftovers`).
        parked = work_folder(out) / f"{out.name}.old-{staging.name.rsplit('-', 1)[-1]}"
        os.rename(out, parked)
        os.rename(staging, out)
        os.rename(parked, staging)
    _fsync_dir(out.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where it is not available."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _clean_leftovers(out: Path) -> None:
    """Under the lock: restore a parked bundle a killed run left without a successor, drop unfinished folders
    (also those that ecgaudit 0.1.0 left beside the output as `.<name>.old-*` and `.<name>.new-*`)."""
    name = glob.escape(out.name)
    parked = sorted([*work_folder(out).glob(f"{name}.old-*"), *out.parent.glob(f".{name}.old-*")],
                    key=lambda path: path.name.lstrip("."))
    if parked and not out.exists():
        os.rename(parked.pop(), out)
    for leftover in [*parked, *work_folder(out).glob(f"{name}.new-*"), *out.parent.glob(f".{name}.new-*")]:
        shutil.rmtree(leftover, ignore_errors=True)
