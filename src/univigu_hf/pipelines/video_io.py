"""Every video input of the library in one place: files, PIL frames, arrays and tensors become `(frames, 3, H, W)`
float tensors in [0, 1] (used by the pipeline, the transformers tasks, the `univigu` command and data preparation)."""

import os
from collections.abc import Callable, Sequence

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers.utils import logging

from ..utils.checks import all_finite
from ..utils.saving import atomic_file


logger = logging.get_logger(__name__)


class VideoClip:
    """
    One video whose frames are converted only when asked for: `num_frames` is known up front, `read(index)` returns
    the chosen frames. A file is decoded frame by frame and only the chosen frames are kept, so reading a few frames of
    a long, large clip costs the memory of those frames, not of the clip.

    Args:
        num_frames (`int`): the number of frames.
        read_frames (`Callable[[list[int], Callable | None], torch.Tensor]`): returns the frames at sorted, distinct
            indices as `(len(index), 3, height, width)` float32 in [0, 1], each passed through the transform (if any)
            as soon as it is converted.
        source (`str`): what the clip is, for messages (a path, or the input's type).
    """

    def __init__(self, num_frames: int, read_frames: Callable, source: str):
        self.num_frames = num_frames
        self._read_frames = read_frames
        self.source = source

    def read(
        self, index: Sequence[int] | torch.Tensor | None = None, transform: Callable | None = None
    ) -> torch.Tensor:
        """
        Args:
            index (*optional*): frame indices in `[0, num_frames)`, in any order and with repeats; `None` for all.
            transform (`Callable`, *optional*): applied to `(n, 3, height, width)` frames (e.g. resizing); a file's
                frames go through it one by one as they are decoded, so only transformed frames are kept.

        Returns:
            `torch.Tensor`: `(len(index), 3, height, width)` float32 in [0, 1] (or what `transform` makes of them).
        """
        index = list(range(self.num_frames)) if index is None else [int(i) for i in index]
        if any(not 0 <= i < self.num_frames for i in index):
            raise ValueError(f"frame indices must be in [0, {self.num_frames}) for {self.source}, got {index}")
        distinct = sorted(set(index))
        frames = self._read_frames(distinct, transform)
        position = {frame: row for row, frame in enumerate(distinct)}
        return frames[[position[i] for i in index]]

    def __repr__(self) -> str:
        return f"VideoClip({self.source}, num_frames={self.num_frames})"


def to_clips(video) -> list[VideoClip]:
    """
    Checks every accepted video input and wraps it as a list of [`VideoClip`]s; files are opened (their frames
    counted) but not decoded into memory.

    Args:
        video: one video or a list of them: a file path (`str`/`os.PathLike`, any format imageio-ffmpeg reads), a list
            of `PIL.Image.Image` frames, a `np.ndarray` `(frames, height, width, 3)` (or with a leading batch axis),
            `uint8` or float in [0, 1], a `torch.Tensor` `(frames, 3, height, width)` (or batched), float in [0, 1],
            or a [`VideoClip`].

    Returns:
        `list[VideoClip]`: one per video.
    """
    if isinstance(video, VideoClip):
        return [video]
    if isinstance(video, (str, os.PathLike)):
        return [open_video_file(os.fspath(video))]
    if isinstance(video, PIL.Image.Image):
        return [_pil_clip([video])]
    if isinstance(video, (list, tuple)):
        if not video:
            raise ValueError(
                "video must not be an empty list; accepted: a path, a list of PIL frames, an array or tensor, or a "
                "non-empty list of these"
            )
        if all(isinstance(frame, PIL.Image.Image) for frame in video):
            return [_pil_clip(video)]
        clips = []
        for item in video:
            if isinstance(item, (list, tuple)) and item and all(isinstance(f, PIL.Image.Image) for f in item):
                clips.append(_pil_clip(item))
            else:
                clips.extend(to_clips(item) if not isinstance(item, (list, tuple)) else [None])
        if any(clip is None for clip in clips):
            raise TypeError(
                "video must be a path, a list of PIL images, a numpy array, a torch tensor, or a list of these"
            )
        return clips
    if isinstance(video, np.ndarray):
        if video.ndim not in (4, 5) or video.shape[-1] != 3:
            raise ValueError(
                "video as a numpy array must have shape (frames, height, width, 3) or (batch, frames, height, width, "
                f"3), got {video.shape}"
            )
        if video.dtype == np.uint8:
            divisor = 255.0
        elif np.issubdtype(video.dtype, np.floating):
            divisor = 1.0
            if not np.isfinite(video).all():
                raise ValueError(_NON_FINITE_VIDEO.format(int((~np.isfinite(video)).sum())))
            check_unit_range(float(video.min()), float(video.max()))
        else:
            raise TypeError(f"video as a numpy array must be uint8 in [0, 255] or float in [0, 1], got {video.dtype}")
        clips = list(video) if video.ndim == 5 else [video]
        return [
            VideoClip(
                len(clip),
                lambda index, transform, clip=clip: _apply(
                    transform, torch.from_numpy(clip[index].astype(np.float32) / divisor).movedim(-1, -3)
                ),
                "a numpy array",
            )
            for clip in clips
        ]
    if isinstance(video, torch.Tensor):
        if video.ndim not in (4, 5) or video.shape[-3] != 3:
            raise ValueError(
                "video as a torch tensor must have shape (frames, 3, height, width) or (batch, frames, 3, height, "
                f"width), got {tuple(video.shape)}"
            )
        if not video.is_floating_point():
            raise TypeError(f"video as a torch tensor must be floating point in [0, 1], got {video.dtype}")
        tensor = video.detach()
        if not all_finite(tensor):
            raise ValueError(_NON_FINITE_VIDEO.format(int((~torch.isfinite(tensor)).sum())))
        check_unit_range(float(tensor.min()), float(tensor.max()))
        clips = list(tensor) if tensor.ndim == 5 else [tensor]
        return [
            VideoClip(
                len(clip),
                lambda index, transform, clip=clip: _apply(transform, clip[index].float().cpu()),
                "a torch tensor",
            )
            for clip in clips
        ]
    raise TypeError(
        "video must be a path, a list of PIL images, a numpy array, a torch tensor, or a list of these; got "
        f"{type(video).__name__}"
    )


def to_frame_tensors(video) -> list[torch.Tensor]:
    """
    Every frame of every video, as [`to_clips`] accepts them.

    Returns:
        `list[torch.Tensor]`: one `(frames, 3, height, width)` float32 tensor in [0, 1] per video.
    """
    return [clip.read() for clip in to_clips(video)]


_NON_FINITE_VIDEO = "video contains {} NaN or inf values; accepted: finite floats in [0, 1] (or uint8 in [0, 255])"


def check_unit_range(low: float, high: float, tolerance: float = 1e-3) -> None:
    """Raises a `ValueError` unless float video values `[low, high]` lie in [0, 1] (within `tolerance`)."""
    if low < -tolerance or high > 1 + tolerance:
        raise ValueError(
            f"video values must be in [0, 1] (floats) or [0, 255] (uint8), got values in [{low:.3f}, {high:.3f}]"
            + ("; a [-1, 1] tensor can be passed as (video + 1) / 2" if low < 0 else "")
        )


def pil_frames(frames) -> torch.Tensor:
    """PIL frames (all the same size) as a `(frames, 3, height, width)` float32 tensor in [0, 1]."""
    arrays = [np.asarray(frame.convert("RGB"), dtype=np.float32) / 255.0 for frame in frames]
    if len({a.shape for a in arrays}) > 1:
        raise ValueError("video frames must all have the same size")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def _pil_clip(frames) -> VideoClip:
    frames = list(frames)
    if len({frame.size for frame in frames}) > 1:
        raise ValueError("video frames must all have the same size")
    return VideoClip(
        len(frames),
        lambda index, transform: _apply(transform, pil_frames([frames[i] for i in index])),
        "a list of PIL images",
    )


def _apply(transform: Callable | None, frames: torch.Tensor) -> torch.Tensor:
    return frames if transform is None else transform(frames)


_VIDEO_READ_ATTEMPTS = 3


def _with_retries(path: str, action: Callable):
    """Runs `action()`, turning a failure into a `ValueError` that names the file. imageio-ffmpeg gives up on
    ffmpeg's header after 10 s ("Could not load meta information"), which a busy machine can exceed for a valid file:
    an `OSError` is retried before the file is called unreadable."""
    for attempt in range(_VIDEO_READ_ATTEMPTS):
        try:
            return action()
        except OSError as error:
            if attempt + 1 < _VIDEO_READ_ATTEMPTS:
                logger.warning(f"Reading {path!r} failed ({error.__class__.__name__}); trying again.")
                continue
            raise ValueError(
                f"video file {path!r} could not be read as a video after {_VIDEO_READ_ATTEMPTS} attempts "
                f"({type(error).__name__}: {error})"
            ) from error
        except ValueError:
            raise
        except Exception as error:  # imageio raises many types for unreadable files
            raise ValueError(
                f"video file {path!r} could not be read as a video ({type(error).__name__}: {error})"
            ) from error


def open_video_file(path: str) -> VideoClip:
    """
    Opens a video file (any format imageio-ffmpeg reads; gifs through PIL, as diffusers' `load_video`) as a
    [`VideoClip`]: its frames are counted now and decoded when read, keeping only the frames asked for.

    Raises:
        `FileNotFoundError` if there is no such file, `ValueError` if it cannot be read as a video.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file not found: {path!r}")
    if path.lower().endswith(".gif"):
        count = _with_retries(path, lambda: _gif_frame_count(path))
        read = lambda index, transform: _with_retries(path, lambda: _read_gif_frames(path, index, transform))  # noqa: E731
    else:
        count = _with_retries(path, lambda: _ffmpeg_frame_count(path))
        read = lambda index, transform: _with_retries(path, lambda: _read_ffmpeg_frames(path, index, transform))  # noqa: E731
    if not count:
        raise ValueError(f"video file {path!r} has no frames")
    return VideoClip(count, read, repr(path))


def load_video_file(path: str) -> torch.Tensor:
    """
    Reads every frame of a video file as a `(frames, 3, height, width)` float32 tensor in [0, 1] (see
    [`open_video_file`] to read only some).

    Raises:
        `FileNotFoundError` if there is no such file, `ValueError` if it cannot be read as a video.
    """
    return open_video_file(path).read()


def _gif_frame_count(path: str) -> int:
    with PIL.Image.open(path) as gif:
        return int(getattr(gif, "n_frames", 1))


def _read_gif_frames(path: str, index: list[int], transform: Callable | None) -> torch.Tensor:
    frames = []
    with PIL.Image.open(path) as gif:
        for i in index:
            gif.seek(i)
            frames.append(_apply(transform, pil_frames([gif.convert("RGB")])))
    return torch.cat(frames)


def _ffmpeg_frame_count(path: str) -> int:
    import imageio

    with imageio.get_reader(path, format="ffmpeg") as reader:
        return int(reader.count_frames())


def _read_ffmpeg_frames(path: str, index: list[int], transform: Callable | None) -> torch.Tensor:
    """Decodes the file once, frame by frame, converting (and transforming) only the frames at the sorted indices
    `index`."""
    import imageio

    wanted, frames, delivered = set(index), [], 0
    with imageio.get_reader(path, format="ffmpeg") as reader:
        for frame in reader:
            if delivered in wanted:
                frames.append(
                    _apply(transform, torch.from_numpy(frame.astype(np.float32) / 255.0).permute(2, 0, 1)[None])
                )
            delivered += 1
            if len(frames) == len(wanted):
                break
    if len(frames) != len(wanted):
        # ffmpeg's frame count (a decoding pass of its own) and the frames it delivers can differ for odd files.
        raise ValueError(
            f"video file {path!r} delivered {delivered} frames, fewer than the {max(index) + 1} its counting pass "
            "found; re-encode it (e.g. ffmpeg -i in.mp4 out.mp4)"
        )
    return torch.cat(frames)


def resize_and_center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resizes `(frames, 3, h, w)` frames (aspect ratio kept, antialiased) to cover `height x width`, then crops the
    center."""
    _, _, h, w = frames.shape
    if (h, w) != (height, width):
        scale = max(height / h, width / w)
        size = (max(height, round(h * scale)), max(width, round(w * scale)))
        frames = F.interpolate(frames, size=size, mode="bilinear", antialias=True, align_corners=False)
        top = (size[0] - height) // 2
        left = (size[1] - width) // 2
        frames = frames[:, :, top : top + height, left : left + width]
    return frames.clamp(0.0, 1.0)


def write_video(frames, path: str, fps: float) -> None:
    """
    Writes `(frames, height, width, 3)` floats in [0, 1] as mp4 (h264) or gif, chosen by the extension of `path`.
    The file is complete or absent: it is written to a temporary name in the same folder, read back (its frame count
    must match), then renamed onto `path`; an interrupted or failed write leaves `path` as it was.

    Raises:
        `OSError` when the file cannot be written (a read-only folder, a full disk, `path` is a folder, the encoder
        failed), with the reason.
    """
    path = os.fspath(path)
    frames = np.clip(np.asarray(frames, dtype=np.float32), 0.0, 1.0)
    with atomic_file(path) as temporary:
        try:
            if path.lower().endswith(".gif"):
                import imageio

                uint8 = (frames * 255).round().astype(np.uint8)
                imageio.mimsave(temporary, list(uint8), duration=1000.0 / fps, loop=0)
            else:
                from diffusers.utils import export_to_video

                export_to_video(list(frames), temporary, fps=fps)
        except OSError:
            raise
        except Exception as error:  # imageio and ffmpeg raise many types
            raise OSError(f"the video writer failed ({type(error).__name__}: {error})") from error
        # ffmpeg reports some failures (a full disk among them) only on its stderr: check what was written.
        try:
            written = open_video_file(temporary).num_frames if os.path.getsize(temporary) else 0
        except ValueError:
            written = 0
        if written != len(frames):
            raise OSError(
                f"the video writer produced {written} of {len(frames)} frames (is the disk full?); nothing was saved"
            )
