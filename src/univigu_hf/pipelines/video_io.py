"""Every video input of the library in one place: files, PIL frames, arrays and tensors become `(frames, 3, H, W)`
float tensors in [0, 1] (used by the pipeline, the transformers tasks, the `univigu` command and data preparation)."""

import os
from collections.abc import Callable, Sequence

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers.utils import logging
from diffusers.utils.logging import tqdm

from ..utils.checks import all_finite
from ..utils.saving import atomic_file


logger = logging.get_logger(__name__)

# Progress bars (diffusers' tqdm: `diffusers.utils.logging.disable_progress_bar()` and `univigu --quiet` hide them) for
# work long enough to look stuck: opening this many files (each is counted), decoding this many frames of one file.
_PROGRESS_MIN_FILES = 8
_PROGRESS_MIN_FRAMES = 500


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
        # Opening a file counts its frames (a decoding pass): show progress for a long list of files.
        files = sum(isinstance(item, (str, os.PathLike)) for item in video)
        items = tqdm(video, desc="Opening videos", unit="video", disable=files < _PROGRESS_MIN_FILES, leave=False)
        for position, item in enumerate(items):
            if isinstance(item, (list, tuple)) and not (item and all(isinstance(f, PIL.Image.Image) for f in item)):
                raise TypeError(
                    f"video[{position}] must be a path, a list of PIL images, a numpy array or a torch tensor, got "
                    f"{type(item).__name__} of {[type(f).__name__ for f in item][:3]}"
                )
            try:
                clips.extend([_pil_clip(item)] if isinstance(item, (list, tuple)) else to_clips(item))
            except (ValueError, TypeError, FileNotFoundError) as error:
                # Name the batch position: in a batch of 200 files, "video file not found" alone is not enough.
                raise type(error)(f"video[{position}]: {error}") from error
        return clips
    if isinstance(video, np.ndarray):
        if video.ndim not in (4, 5) or video.shape[-1] != 3:
            hint = (
                "; drop the alpha channel with video[..., :3]" if video.ndim in (4, 5) and video.shape[-1] == 4 else ""
            )
            raise ValueError(
                "video as a numpy array must have shape (frames, height, width, 3) or (batch, frames, height, width, "
                f"3), got {video.shape}{hint}"
            )
        return _array_clips(
            video,
            video.shape[-4:-1],
            "a numpy array",
            lambda a: torch.from_numpy(a.astype(np.float32)).movedim(-1, -3),
        )
    if isinstance(video, torch.Tensor):
        if video.ndim in (4, 5) and video.dtype == torch.uint8 and video.shape[-1] == 3:
            # torchvision.io.read_video and decord give uint8 (frames, height, width, 3), as imageio's arrays are.
            return to_clips(video.detach().cpu().numpy())
        if video.ndim not in (4, 5) or video.shape[-3] != 3:
            raise ValueError(
                "video as a torch tensor must have shape (frames, 3, height, width) or (batch, frames, 3, height, "
                f"width) (or uint8 (frames, height, width, 3), as torchvision and decord return), got "
                f"{tuple(video.shape)}"
            )
        tensor = video.detach()
        return _array_clips(
            tensor, (tensor.shape[-4], *tensor.shape[-2:]), "a torch tensor", lambda t: t.cpu().float()
        )
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

# Integer pixel types and the value of full intensity: 8-bit frames (imageio, PIL, torchvision, decord) and 16-bit
# ones (10- and 16-bit sources read without conversion).
_INTEGER_FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0}


def _integer_divisor(dtype, what: str) -> float | None:
    """The full-scale value of an integer pixel type, `None` for floats; a `TypeError` for any other type."""
    name = str(dtype).removeprefix("torch.")
    if name in _INTEGER_FULL_SCALE:
        return _INTEGER_FULL_SCALE[name]
    if name in ("float16", "bfloat16", "float32", "float64"):
        return None
    raise TypeError(
        f"video as {what} must be uint8 in [0, 255], uint16 in [0, 65535] or float in [0, 1], got {name} (convert "
        "it to one of these: signed integers and booleans have no fixed full intensity)"
    )


def _array_clips(video, frames_height_width, what: str, to_frames: Callable) -> list[VideoClip]:
    """One [`VideoClip`] per video of a 4-D (one video) or 5-D (a batch) array or tensor, after the checks every
    array input gets: not empty, a pixel type with a full intensity, finite floats in [0, 1]. `to_frames` turns the
    chosen frames into a `(n, 3, height, width)` float32 tensor, before the scaling to [0, 1]."""
    _check_not_empty(frames_height_width, what)
    divisor = _integer_divisor(video.dtype, what)
    if divisor is None:
        _check_float_values(video)
    clips = list(video) if video.ndim == 5 else [video]
    return [
        VideoClip(
            len(clip),
            lambda index, transform, clip=clip: _apply(transform, to_frames(clip[index]) / (divisor or 1.0)),
            what,
        )
        for clip in clips
    ]


def _check_float_values(values) -> None:
    if isinstance(values, np.ndarray):
        finite = np.isfinite(values)
        if not finite.all():
            raise ValueError(_NON_FINITE_VIDEO.format(int((~finite).sum())))
    elif not all_finite(values):
        raise ValueError(_NON_FINITE_VIDEO.format(int((~torch.isfinite(values)).sum())))
    check_unit_range(float(values.min()), float(values.max()))


def _check_not_empty(frames_height_width, what: str) -> None:
    """A `ValueError` for a video with no frames or frames with no pixels."""
    frames, height, width = (int(n) for n in frames_height_width)
    if frames == 0 or height == 0 or width == 0:
        raise ValueError(
            f"video as {what} is empty: {frames} frames of {height}x{width} pixels; a video needs at least one "
            "frame of at least 1x1 pixels"
        )


def check_unit_range(low: float, high: float, tolerance: float = 1e-3) -> None:
    """Raises a `ValueError` unless float video values `[low, high]` lie in [0, 1] (within `tolerance`)."""
    if low < -tolerance or high > 1 + tolerance:
        raise ValueError(
            f"video values must be in [0, 1] (floats) or [0, 255] (uint8), got values in [{low:.3f}, {high:.3f}]"
            + ("; a [-1, 1] tensor can be passed as (video + 1) / 2" if low < 0 else "")
        )


# PIL modes whose `convert("RGB")` keeps every value: palettes, grey levels, bilevel and other 8-bit colour spaces.
_PIL_8BIT_MODES = ("RGB", "L", "P", "1", "CMYK", "YCbCr", "LAB", "HSV")
_PIL_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_PIL_16BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def pil_frame_array(frame: PIL.Image.Image) -> np.ndarray:
    """
    One PIL frame as a `(height, width, 3)` float32 array in [0, 1], converted without loss: 8-bit modes through
    `convert("RGB")`, 16-bit grey (`I;16*`) scaled by 65535, float (`F`) grey kept (it must lie in [0, 1]); an alpha
    channel is ignored (the colour is kept as stored, not blended).

    Raises:
        `ValueError` for a frame with no pixels, `TypeError` for a mode with no fixed full intensity (`I`, 32-bit
        integers) or none of the above.
    """
    check_pil_frame(frame)
    mode = frame.mode
    if mode in _PIL_8BIT_MODES:
        return np.asarray(frame.convert("RGB"), dtype=np.float32) / 255.0
    if mode in _PIL_ALPHA_MODES:
        return np.asarray(frame.convert("RGBA"), dtype=np.float32)[..., :3] / 255.0
    if mode in _PIL_16BIT_MODES:
        grey = np.asarray(frame, dtype=np.float32) / 65535.0
    else:  # "F"
        grey = np.asarray(frame, dtype=np.float32)
        _check_float_values(grey)
        grey = np.clip(grey, 0.0, 1.0)
    return np.repeat(grey[..., None], 3, axis=-1)


def check_pil_frame(frame: PIL.Image.Image) -> None:
    """Raises the errors of [`pil_frame_array`] for a frame without converting it: no pixels (`ValueError`), or a
    mode that is not converted faithfully (`TypeError`)."""
    if frame.width == 0 or frame.height == 0:
        raise ValueError(f"video frames must have at least 1x1 pixels, got a {frame.width}x{frame.height} PIL frame")
    if frame.mode not in (*_PIL_8BIT_MODES, *_PIL_ALPHA_MODES, *_PIL_16BIT_MODES, "F"):
        raise TypeError(
            f"video frames in PIL mode {frame.mode!r} are not accepted: use an 8-bit mode "
            f"({', '.join(_PIL_8BIT_MODES)}), one with alpha ({', '.join(_PIL_ALPHA_MODES)}), 16-bit grey "
            f"({', '.join(_PIL_16BIT_MODES)}) or 'F' in [0, 1]"
        )


def pil_frames(frames) -> torch.Tensor:
    """PIL frames (all the same size) as a `(frames, 3, height, width)` float32 tensor in [0, 1] (see
    [`pil_frame_array`] for the modes)."""
    arrays = [pil_frame_array(frame) for frame in frames]
    if len({a.shape for a in arrays}) > 1:
        raise ValueError("video frames must all have the same size")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def _pil_clip(frames) -> VideoClip:
    frames = list(frames)
    if len({frame.size for frame in frames}) > 1:
        raise ValueError(
            f"video frames must all have the same size, got {sorted({frame.size for frame in frames})} (width, height)"
        )
    check_pil_frame(frames[0])  # before any frame is converted
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


# Animated image formats read through PIL (as diffusers' `load_video` reads gifs); everything else through ffmpeg.
_PIL_VIDEO_FORMATS = ("GIF", "PNG", "WEBP")


def open_video_file(path: str) -> VideoClip:
    """
    Opens a video file as a [`VideoClip`]: its frames are counted now and decoded when read, keeping only the frames
    asked for. Animated GIF, PNG (APNG) and WebP files are read through PIL, any other file through ffmpeg
    (imageio-ffmpeg), whatever its extension.

    Raises:
        `FileNotFoundError` if there is no such file; `ValueError` for a URL, an image-sequence pattern, a folder, a
        file with no video stream or one that cannot be read as a video.
    """
    if "://" in path:
        raise ValueError(
            f"video {path!r} is a URL; videos are read from local files: download it first (e.g. with "
            "huggingface_hub.hf_hub_download for a Hub file)"
        )
    if os.path.isdir(path):
        raise ValueError(
            f"video {path!r} is a folder; pass a video file, or its frames as a list of PIL images (e.g. "
            "[PIL.Image.open(p) for p in sorted(paths)])"
        )
    if not os.path.isfile(path):
        if "%" in os.path.basename(path):
            raise ValueError(
                f"video {path!r} looks like an image-sequence pattern, which is not read; pass a video file, or the "
                "frames as a list of PIL images"
            )
        raise FileNotFoundError(f"video file not found: {path!r}")
    pil_format = _pil_video_format(path)
    if pil_format is not None:
        count = _with_retries(path, lambda: _pil_frame_count(path))
        read = lambda index, transform: _with_retries(path, lambda: _read_pil_frames(path, index, transform))  # noqa: E731
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


def _pil_video_format(path: str) -> str | None:
    """The PIL format of an animated-image file (GIF, PNG, WebP), `None` for anything else."""
    try:
        with PIL.Image.open(path) as image:
            return image.format if image.format in _PIL_VIDEO_FORMATS else None
    except (OSError, ValueError, PIL.Image.DecompressionBombError):
        return None


def _pil_frame_count(path: str) -> int:
    with PIL.Image.open(path) as image:
        return int(getattr(image, "n_frames", 1))


def _read_pil_frames(path: str, index: list[int], transform: Callable | None) -> torch.Tensor:
    frames = []
    with PIL.Image.open(path) as image:
        for i in index:
            image.seek(i)
            frames.append(_apply(transform, pil_frames([image.convert("RGBA")])))
    return torch.cat(frames)


def _ffmpeg_error(path: str, error: Exception) -> ValueError:
    text = str(error)
    if "Audio:" in text and "Video:" not in text:
        return ValueError(f"video file {path!r} has no video stream (only audio)")
    return ValueError(f"video file {path!r} could not be read as a video ({type(error).__name__}: {text[-500:]})")


def _ffmpeg_frame_count(path: str) -> int:
    import imageio_ffmpeg

    try:
        return int(imageio_ffmpeg.count_frames_and_secs(path)[0])
    except RuntimeError as error:  # ffmpeg exited with an error: the file is not a video it can decode
        raise _ffmpeg_error(path, error) from error


def _read_ffmpeg_frames(path: str, index: list[int], transform: Callable | None) -> torch.Tensor:
    """Decodes the file once, frame by frame, converting (and transforming) only the frames at the sorted indices
    `index`. ffmpeg applies the file's rotation and converts any pixel format (grey, 10-bit, alpha) to 8-bit RGB."""
    import imageio_ffmpeg

    wanted, frames, delivered = set(index), [], 0
    reader = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
    progress = tqdm(
        total=max(index) + 1,
        desc=f"Decoding {os.path.basename(path)}",
        unit="frame",
        disable=max(index) + 1 < _PROGRESS_MIN_FRAMES,
        leave=False,
    )
    try:
        width, height = next(reader)["size"]
        for raw in reader:
            if delivered in wanted:
                frame = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
                frames.append(
                    _apply(transform, torch.from_numpy(frame.astype(np.float32) / 255.0).permute(2, 0, 1)[None])
                )
            delivered += 1
            progress.update()
            if len(frames) == len(wanted):
                break
    finally:
        reader.close()
        progress.close()
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
    gif = path.lower().endswith(".gif")
    height, width = frames.shape[1:3]
    if not gif and (height % 2 or width % 2):
        raise ValueError(
            f"an mp4 (h264, yuv420p) needs an even width and height, got {width}x{height} frames for {path!r}; "
            "crop or pad them to even sizes, or save as .gif"
        )
    with atomic_file(path) as temporary:
        try:
            if gif:
                import imageio

                uint8 = (frames * 255).round().astype(np.uint8)
                imageio.mimsave(temporary, list(uint8), duration=1000.0 / fps, loop=0)
            else:
                from diffusers.utils import export_to_video

                # macro_block_size=1: the frames are written at the size asked for, not scaled up to a multiple of 16.
                export_to_video(list(frames), temporary, fps=fps, macro_block_size=1)
        except OSError:
            raise
        except Exception as error:  # imageio and ffmpeg raise many types
            raise OSError(f"the video writer failed ({type(error).__name__}: {error})") from error
        # ffmpeg reports some failures (a full disk among them) only on its stderr: check what was written.
        try:
            written = _written_frames(temporary, gif, fps) if os.path.getsize(temporary) else 0
        except ValueError:
            written = 0
        if written != len(frames):
            raise OSError(
                f"the video writer produced {written} of {len(frames)} frames (is the disk full?); nothing was saved"
            )


def _written_frames(path: str, gif: bool, fps: float) -> int:
    """How many frames a written file plays. A GIF stores a run of identical frames once, with the run's duration
    (Pillow merges them; a still video is one stored frame), so its frames are counted by duration."""
    if not gif:
        return open_video_file(path).num_frames
    frame_ms, count = 1000.0 / fps, 0
    with PIL.Image.open(path) as image:
        for i in range(getattr(image, "n_frames", 1)):
            image.seek(i)
            # GIF durations are whole centiseconds: each stored frame's is rounded, so round per stored frame.
            count += max(1, round(image.info.get("duration", frame_ms) / frame_ms))
    return count
