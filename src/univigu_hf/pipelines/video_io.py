"""Every video input of the library in one place: files, PIL frames, arrays and tensors become `(frames, 3, H, W)`
float tensors in [0, 1] (used by the pipeline, the transformers tasks, the `univigu` command and data preparation)."""

import os

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers.utils import logging
from diffusers.utils.loading_utils import load_video

from ..utils.checks import all_finite


logger = logging.get_logger(__name__)


def to_frame_tensors(video) -> list[torch.Tensor]:
    """
    Normalises every accepted video input into a list of clips.

    Args:
        video: one video or a list of them: a file path (`str`/`os.PathLike`, any format imageio-ffmpeg reads), a list
            of `PIL.Image.Image` frames, a `np.ndarray` `(frames, height, width, 3)` (or with a leading batch axis),
            `uint8` or float in [0, 1], or a `torch.Tensor` `(frames, 3, height, width)` (or batched), float in [0, 1].

    Returns:
        `list[torch.Tensor]`: one `(frames, 3, height, width)` float32 tensor in [0, 1] per video.
    """
    if isinstance(video, (str, os.PathLike)):
        return [load_video_file(os.fspath(video))]
    if isinstance(video, PIL.Image.Image):
        return [pil_frames([video])]
    if isinstance(video, (list, tuple)):
        if not video:
            raise ValueError(
                "video must not be an empty list; accepted: a path, a list of PIL frames, an array or tensor, or a "
                "non-empty list of these"
            )
        if all(isinstance(frame, PIL.Image.Image) for frame in video):
            return [pil_frames(video)]
        clips = []
        for item in video:
            if isinstance(item, (list, tuple)) and item and all(isinstance(f, PIL.Image.Image) for f in item):
                clips.append(pil_frames(item))
            else:
                clips.extend(to_frame_tensors(item) if not isinstance(item, (list, tuple)) else [None])
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
            array = video.astype(np.float32) / 255.0
        elif np.issubdtype(video.dtype, np.floating):
            array = video.astype(np.float32)
            if not np.isfinite(array).all():
                raise ValueError(_NON_FINITE_VIDEO.format(int((~np.isfinite(array)).sum())))
            check_unit_range(array.min(), array.max())
        else:
            raise TypeError(f"video as a numpy array must be uint8 in [0, 255] or float in [0, 1], got {video.dtype}")
        tensor = torch.from_numpy(array).movedim(-1, -3)  # (..., F, 3, H, W)
        return list(tensor) if tensor.ndim == 5 else [tensor]
    if isinstance(video, torch.Tensor):
        if video.ndim not in (4, 5) or video.shape[-3] != 3:
            raise ValueError(
                "video as a torch tensor must have shape (frames, 3, height, width) or (batch, frames, 3, height, "
                f"width), got {tuple(video.shape)}"
            )
        if not video.is_floating_point():
            raise TypeError(f"video as a torch tensor must be floating point in [0, 1], got {video.dtype}")
        tensor = video.detach().float().cpu()
        if not all_finite(tensor):
            raise ValueError(_NON_FINITE_VIDEO.format(int((~torch.isfinite(tensor)).sum())))
        check_unit_range(float(tensor.min()), float(tensor.max()))
        return list(tensor) if tensor.ndim == 5 else [tensor]
    raise TypeError(
        "video must be a path, a list of PIL images, a numpy array, a torch tensor, or a list of these; got "
        f"{type(video).__name__}"
    )


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


_VIDEO_READ_ATTEMPTS = 3


def load_video_file(path: str) -> torch.Tensor:
    """
    Reads a video file (any format imageio-ffmpeg reads) as a `(frames, 3, height, width)` float32 tensor in [0, 1].

    Raises:
        `FileNotFoundError` if there is no such file, `ValueError` if it cannot be read as a video.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file not found: {path!r}")
    for attempt in range(_VIDEO_READ_ATTEMPTS):
        try:
            frames = load_video(path)
            break
        except OSError as error:
            # imageio-ffmpeg gives up on ffmpeg's header after 10 s ("Could not load meta information"), which a
            # busy machine can exceed for a valid file: read again before calling the file unreadable.
            if attempt + 1 < _VIDEO_READ_ATTEMPTS:
                logger.warning(f"Reading {path!r} failed ({error.__class__.__name__}); trying again.")
                continue
            raise ValueError(
                f"video file {path!r} could not be read as a video after {_VIDEO_READ_ATTEMPTS} attempts "
                f"({type(error).__name__}: {error})"
            ) from error
        except Exception as error:  # imageio raises many types for unreadable files
            raise ValueError(
                f"video file {path!r} could not be read as a video ({type(error).__name__}: {error})"
            ) from error
    if not frames:
        raise ValueError(f"video file {path!r} has no frames")
    return pil_frames(frames)


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

    Raises:
        `OSError` when the file cannot be written.
    """
    if path.lower().endswith(".gif"):
        import imageio

        uint8 = (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
        imageio.mimsave(path, list(uint8), duration=1000.0 / fps, loop=0)
    else:
        from diffusers.utils import export_to_video

        export_to_video(list(np.clip(frames, 0.0, 1.0).astype(np.float32)), path, fps=fps)
