"""Atomic saving: a save that is interrupted half-way (an exception, `kill -9`, a full disk) leaves the previous complete
folder, or none, never a half-written one that loads as a broken model.

Everything is first written into a *staging* folder (hidden, on the same filesystem), flushed to disk, then moved into
place with `os.rename`/`os.replace`, which are atomic on POSIX filesystems:

- a target folder that does not exist yet is created by renaming the staging folder (one atomic step);
- an existing folder is *merged* into, as `save_pretrained` of diffusers/transformers does (files that the save does
  not write, such as a `.git` folder, a README or training checkpoints, are kept): the *marker* files that make a
  folder loadable (`model_index.json`, `config.json`) are removed first and written last, and every other file is
  swapped in with an atomic `os.replace`. At any instant the folder is the previous complete save (markers present),
  not loadable (no marker: "none"), or the new complete save.

[`replace_directory`] swaps a whole folder instead (training checkpoints, which hold nothing else), and
[`atomic_file`] writes one file the same way (videos, reports, model cards): to a temporary name in its folder, then
renamed.
"""

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator


STAGING_PREFIX = ".univigu-staging-"
"""Name prefix of the staging folders. One left behind by a killed save holds no complete model; it can be deleted."""

MARKER_FILES = ("model_index.json", "config.json")
"""Files whose presence makes a folder loadable (diffusers pipelines / transformers and diffusers models)."""

# Shard files of a previous save (`model-00001-of-00003.safetensors`): removed when the new save writes the same weights
# under another sharding, as diffusers' and transformers' `save_pretrained` do.
_SHARD = re.compile(r"(.*?)-\d{5}-of-\d{5}\.(safetensors|bin)")
_WEIGHTS = re.compile(r"(.*?)(-\d{5}-of-\d{5})?\.(safetensors|bin)")


def _fsync(path: str, directory: bool = False) -> None:
    """Flushes a file (or a folder's entries) to disk; a no-op where the platform does not support it."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: str) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                _fsync(path)
        _fsync(folder, directory=True)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def staging_directory(target: str | os.PathLike, name: str | None = None) -> str:
    """
    Creates the folder a save into `target` is written to before [`commit_directory`]: inside `target` when it
    exists (so the merge stays on its filesystem, even when `target` is a mount point), else next to it.

    Args:
        target (`str` or `os.PathLike`): the folder being saved.
        name (`str`, *optional*): a fixed suffix (e.g. for processes that must agree on the folder); a leftover
            folder of that name is emptied. Default: unique per call.

    Returns:
        `str`: the absolute path of the new, empty staging folder.
    """
    target = os.path.abspath(os.fspath(target))
    if os.path.lexists(target) and not os.path.isdir(target):
        raise NotADirectoryError(f"save_directory must be a folder (or not exist yet), got the file {target!r}")
    suffix = name or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if os.path.isdir(target):
        staging = os.path.join(target, STAGING_PREFIX + suffix)
    else:
        parent, base = os.path.split(target)
        os.makedirs(parent, exist_ok=True)
        staging = os.path.join(parent, f"{STAGING_PREFIX}{base}-{suffix}")
    if os.path.lexists(staging):
        _remove(staging)
    os.makedirs(staging)
    return staging


def commit_directory(staging: str, target: str | os.PathLike, markers: tuple[str, ...] = MARKER_FILES) -> None:
    """
    Moves a complete save from `staging` into `target` (see the module docstring) and removes `staging`.

    Args:
        staging (`str`): a folder from [`staging_directory`]`(target)`, holding the complete new save.
        target (`str` or `os.PathLike`): the destination folder.
        markers (`tuple[str, ...]`): file names that make a folder loadable: removed first, written last.
    """
    target = os.path.abspath(os.fspath(target))
    _fsync_tree(staging)
    if not os.path.lexists(target):
        os.rename(staging, target)
        _fsync(os.path.dirname(target), directory=True)
        return

    files, folders = [], []
    for folder, subfolders, names in os.walk(staging):
        relative = os.path.relpath(folder, staging)
        folders.extend(os.path.normpath(os.path.join(relative, sub)) for sub in subfolders)
        files.extend(os.path.normpath(os.path.join(relative, name)) for name in names)
    new_files = set(files)

    def depth(path: str) -> int:
        return path.count(os.sep)

    marker_files = [path for path in files if os.path.basename(path) in markers]
    # 1. The previous save stops being loadable (outermost marker first).
    for path in sorted(marker_files, key=depth):
        destination = os.path.join(target, path)
        if os.path.isfile(destination) or os.path.islink(destination):
            os.remove(destination)
    _fsync(target, directory=True)
    # 2. Every other file, swapped in atomically.
    for folder in sorted(folders, key=depth):
        destination = os.path.join(target, folder)
        if os.path.lexists(destination) and not os.path.isdir(destination):
            os.remove(destination)
        os.makedirs(destination, exist_ok=True)
    for path in files:
        if path in marker_files:
            continue
        destination = os.path.join(target, path)
        if os.path.isdir(destination) and not os.path.islink(destination):
            shutil.rmtree(destination)
        os.replace(os.path.join(staging, path), destination)
    _remove_stale_shards(target, new_files)
    for folder in {os.path.dirname(path) for path in files}:
        _fsync(os.path.join(target, folder), directory=True)
    # 3. The new save becomes loadable (innermost marker first, the folder's own marker last).
    for path in sorted(marker_files, key=depth, reverse=True):
        os.replace(os.path.join(staging, path), os.path.join(target, path))
        _fsync(os.path.dirname(os.path.join(target, path)), directory=True)
    shutil.rmtree(staging, ignore_errors=True)


def _remove_stale_shards(target: str, new_files: set[str]) -> None:
    """Deletes weight shards of a previous save that the new save replaced (same stem, other sharding)."""
    stems: dict[str, set[str]] = {}
    for path in new_files:
        match = _WEIGHTS.fullmatch(os.path.basename(path))
        if match:
            stems.setdefault(os.path.dirname(path), set()).add(match.group(1))
    for folder, folder_stems in stems.items():
        for name in os.listdir(os.path.join(target, folder)):
            match = _SHARD.fullmatch(name)
            path = os.path.normpath(os.path.join(folder, name))
            if match and match.group(1) in folder_stems and path not in new_files:
                os.remove(os.path.join(target, path))


def replace_directory(staging: str, target: str | os.PathLike) -> None:
    """
    Replaces the folder `target` as a whole by `staging` (a sibling on the same filesystem): when `target` exists it
    is first renamed aside, so at any instant the path holds the old folder, nothing, or the new folder.

    Args:
        staging (`str`): the complete new folder.
        target (`str` or `os.PathLike`): the folder to replace.
    """
    target = os.path.abspath(os.fspath(target))
    _fsync_tree(staging)
    old = None
    if os.path.lexists(target):
        old = f"{staging}.old"
        _remove(old)
        os.rename(target, old)
    os.rename(staging, target)
    _fsync(os.path.dirname(target), directory=True)
    if old is not None:
        _remove(old)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, markers: tuple[str, ...] = MARKER_FILES) -> Iterator[str]:
    """
    `with atomic_directory(folder) as staging:` write the save into `staging`; on a normal exit it is committed into
    `folder` ([`commit_directory`]), on an exception it is deleted and `folder` is left as it was.
    """
    staging = staging_directory(target)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    commit_directory(staging, target, markers)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[str]:
    """
    `with atomic_file("out.mp4") as temporary:` write the file to `temporary` (a new, empty file in the same folder,
    with the same extension, so writers that choose the format by it still do); on a normal exit it is flushed and
    renamed onto `path` in one atomic step, on any exception (Ctrl-C included) or SIGTERM it is deleted and `path` is
    left as it was. The file is therefore complete or absent, never half-written.

    Raises:
        `IsADirectoryError` if `path` is a folder; `FileNotFoundError` if its folder does not exist;
        `PermissionError` (an `OSError`) if the folder is not writable, before anything is written.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a folder; give a file name")
    folder, name = os.path.split(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"the folder of {path!r} does not exist")
    _, extension = os.path.splitext(name)
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.{STAGING_PREFIX}", suffix=extension, dir=folder)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # the permissions of a plainly created file, not mkstemp's 0600
    try:
        with terminate_raises():
            yield temporary
            _fsync(temporary)
            os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    _fsync(folder, directory=True)


@contextlib.contextmanager
def terminate_raises() -> Iterator[None]:
    """
    While inside, SIGTERM (`kill`, a job scheduler's stop) raises `SystemExit(143)` in the main thread instead of
    ending the process at once, so that `finally` and `except` blocks (the removal of a half-written file) run. Only
    when SIGTERM has its default action: a handler the program installed (accelerate's, a Trainer's) is left alone.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `path` atomically (see [`atomic_file`])."""
    with atomic_file(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)


def atomic_save_pretrained(save_method: Callable, save_directory: str | os.PathLike, *args, **kwargs):
    """
    Calls a library `save_pretrained` (`save_method(directory, *args, **kwargs)`) atomically: it writes into a staging
    folder that is then committed into `save_directory`. All arguments pass through; with `push_to_hub=True` the
    default `repo_id` stays the name of `save_directory` (as in diffusers and transformers), not the staging folder's.

    Returns:
        What `save_method` returns.
    """
    if kwargs.get("push_to_hub") and "repo_id" not in kwargs:
        kwargs["repo_id"] = os.fspath(save_directory).split(os.path.sep)[-1]
    with atomic_directory(save_directory) as staging:
        return save_method(staging, *args, **kwargs)


__all__ = [
    "MARKER_FILES",
    "STAGING_PREFIX",
    "atomic_directory",
    "atomic_file",
    "atomic_save_pretrained",
    "commit_directory",
    "replace_directory",
    "staging_directory",
    "write_text_atomic",
]
