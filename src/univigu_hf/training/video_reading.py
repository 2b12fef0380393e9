"""Reading the videos of a training dataset: the paths (or embedded bytes) of its video column, read and
preprocessed by the pipeline with a few threads, and a digest of the files for the prepared-data cache key."""

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch


# Video files are decoded by an ffmpeg subprocess each, so a few threads overlap its start-up and decoding (measured
# in `benchmarks/data_preparation.py`, see docs/training.md).
_VIDEO_READERS = 4


def read_videos(
    pipeline,
    videos: list,
    indices: list[int],
    *,
    base_dir: str | None,
    height: int,
    width: int,
    num_frames: int | None,
) -> list[torch.Tensor]:
    """
    Reads and preprocesses the clips of a batch with [`UniViGUPipeline.preprocess_video`], a few at a time, in order.

    Args:
        pipeline ([`UniViGUPipeline`]): its `preprocess_video` reads, resizes, crops and samples the frames.
        videos (`list`): the video-column values (paths, or `{"path", "bytes"}` records).
        indices (`list[int]`): the dataset rows of `videos` (for the error messages).
        base_dir (`str`, *optional*): the folder relative paths are resolved against.
        height, width, num_frames: passed to `preprocess_video`.

    Returns:
        `list[torch.Tensor]`: one preprocessed clip per value of `videos`.

    Raises:
        `ValueError`: naming the row and the file, when a video is missing or cannot be read.
    """

    def read(value: Any, index: int) -> torch.Tensor:
        with _video_path(value, base_dir, index) as path:
            try:
                return pipeline.preprocess_video(path, height=height, width=width, num_frames=num_frames)
            except (FileNotFoundError, ValueError) as error:
                raise ValueError(f"row {index}: could not prepare video {path!r}: {error}") from None

    with ThreadPoolExecutor(max_workers=min(_VIDEO_READERS, max(1, len(videos)))) as readers:
        return list(readers.map(read, videos, indices))


def _resolve_video(value: Any, base_dir: str | None) -> str | None:
    """The file path of a video-column value (`None` for an embedded `{"bytes": ...}` record without a path)."""
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return None
        value = value.get("path")
    if not isinstance(value, (str, os.PathLike)):
        return None
    path = os.path.expanduser(os.fspath(value))
    if base_dir is not None and not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    return path


@contextlib.contextmanager
def _video_path(value: Any, base_dir: str | None, index: int) -> Iterator[str]:
    """Yields a readable path for a video-column value; embedded bytes go through a temporary file."""
    path = _resolve_video(value, base_dir)
    if path is not None:
        yield path
        return
    if isinstance(value, dict) and value.get("bytes") is not None:
        suffix = os.path.splitext(value.get("path") or "")[1] or ".mp4"
        handle, temporary = tempfile.mkstemp(suffix=suffix)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(value["bytes"])
            yield temporary
        finally:
            os.remove(temporary)
        return
    raise ValueError(f"row {index}: the video column must hold file paths, got {value!r}"[:300])


def video_files_digest(values, base_dir: str | None) -> str:
    """Hash of every referenced video file's path, size and modification time (changing a clip changes the key)."""
    digest = hashlib.sha256()
    for index, value in enumerate(values):
        path = _resolve_video(value, base_dir)
        if path is None:
            digest.update(f"{index}:embedded\n".encode())
            continue
        try:
            stat = os.stat(path)
        except OSError:
            raise ValueError(f"row {index}: video file not found: {path!r}") from None
        digest.update(f"{index}:{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
