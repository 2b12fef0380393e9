"""The shapes world: seeded procedural videos of one shape moving over a plain background, with known attributes.

It is the data behind the embedded default model: prompts and detailed captions come from the attributes, so
generation and captioning can be scored exactly (see `univigu_hf.shapes.scoring`).

Attributes and their words (fixed):
- in the prompt `a {size} {color} {shape} moving {direction}`: shape (circle, square, triangle), color (red,
  green, blue, yellow), size (small, large), direction (left, right, up, down): 96 prompts;
- only in the detailed caption: background (black, gray), speed (slowly, quickly), start position (a 3x3 grid:
  top left, top, top right, left, center, right, bottom left, bottom, bottom right).

`HELD_OUT_PROMPTS` (12 of the 96) never appear in training: one (size, direction) per (shape, color) pair, so
every word is seen in training but these combinations are not.
"""

import collections
import itertools
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from ..utils.saving import atomic_directory


_EXPORT_WORKERS = 4  # threads writing mp4 files in export_folder (each runs an ffmpeg process)

SHAPES = ("circle", "square", "triangle")
COLORS = ("red", "green", "blue", "yellow")
SIZES = ("small", "large")
DIRECTIONS = ("left", "right", "up", "down")
BACKGROUNDS = ("black", "gray")
SPEEDS = ("slowly", "quickly")
ROWS = ("top", "middle", "bottom")
COLUMNS = ("left", "center", "right")
START_POSITIONS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")

# Rendering constants (fractions of the frame side unless noted). The scorer reads them too.
PALETTE = {
    "red": (0.9, 0.1, 0.1),
    "green": (0.1, 0.6, 0.1),  # darker than gray 0.5 in luminance: survives mp4 chroma subsampling
    "blue": (0.15, 0.25, 0.95),
    "yellow": (0.95, 0.9, 0.1),
}
BACKGROUND_VALUES = {"black": (0.0, 0.0, 0.0), "gray": (0.5, 0.5, 0.5)}
HALF_SIZES = {"small": 0.13, "large": 0.20}  # half of the shape's extent
GRID = (0.3, 0.5, 0.7)  # row/column centres of the start positions
# Distance covered over the clip. Worst case (centre start, +-JITTER, +10% travel, large) keeps a 2-pixel margin.
TRAVEL = {"slowly": 0.10, "quickly": 0.20}
DIRECTION_VECTORS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}  # (row, column)
JITTER = 0.02
SUPERSAMPLING = 4

PROMPT_TEMPLATE = "a {size} {color} {shape} moving {direction}"
CAPTION_TEMPLATES = (
    "a {size} {color} {shape} moving {direction} {speed} on a {background} background, starting from the {start}",
    "on a {background} background, a {size} {color} {shape} is moving {direction} {speed} from the {start}",
    "a {size} {color} {shape} starts at the {start} of a {background} frame and keeps moving {direction} {speed}",
)


def _held_out() -> tuple[str, ...]:
    prompts = []
    for i, shape in enumerate(SHAPES):
        for j, color in enumerate(COLORS):
            size = SIZES[(i + j) % 2]
            direction = DIRECTIONS[(i + 2 * j) % 4]
            prompts.append(PROMPT_TEMPLATE.format(size=size, color=color, shape=shape, direction=direction))
    return tuple(prompts)


ALL_PROMPTS = tuple(
    PROMPT_TEMPLATE.format(size=size, color=color, shape=shape, direction=direction)
    for shape, color, size, direction in itertools.product(SHAPES, COLORS, SIZES, DIRECTIONS)
)
HELD_OUT_PROMPTS = _held_out()
TRAIN_PROMPTS = tuple(p for p in ALL_PROMPTS if p not in set(HELD_OUT_PROMPTS))
SPLITS = ("train", "held_out", "all")
# Every attribute's words, in a fixed order (the vocabulary that prompts, captions and scores use).
ATTRIBUTE_VALUES = {
    "shape": SHAPES,
    "color": COLORS,
    "size": SIZES,
    "direction": DIRECTIONS,
    "background": BACKGROUNDS,
    "speed": SPEEDS,
    "start": START_POSITIONS,
}


@dataclass(frozen=True)
class ShapeAttributes:
    """The ground truth of one clip."""

    shape: str
    color: str
    size: str
    direction: str
    background: str
    speed: str
    start: str

    def __post_init__(self):
        for name, accepted in ATTRIBUTE_VALUES.items():
            value = getattr(self, name)
            if value not in accepted:
                raise ValueError(f"{name} must be one of {accepted}, got {value!r}")

    @property
    def prompt(self) -> str:
        return PROMPT_TEMPLATE.format(size=self.size, color=self.color, shape=self.shape, direction=self.direction)

    def caption(self, template: int = 0) -> str:
        """The detailed caption with template `template` (0..len(CAPTION_TEMPLATES)-1)."""
        if not isinstance(template, int) or isinstance(template, bool) or not 0 <= template < len(CAPTION_TEMPLATES):
            raise ValueError(
                f"template must be an integer in [0, {len(CAPTION_TEMPLATES) - 1}] (an index into CAPTION_TEMPLATES), "
                f"got {template!r}"
            )
        return CAPTION_TEMPLATES[template].format(**asdict(self))

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def valid_starts(direction: str) -> tuple[str, ...]:
    """Start positions from which a shape moving `direction` stays inside the frame (the far side or the middle)."""
    if direction not in DIRECTION_VECTORS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    row_step, column_step = DIRECTION_VECTORS[direction]
    starts = []
    for r, c in itertools.product(range(len(ROWS)), range(len(COLUMNS))):
        if (row_step and r == (2 if row_step > 0 else 0)) or (column_step and c == (2 if column_step > 0 else 0)):
            continue
        starts.append(START_POSITIONS[3 * r + c])
    return tuple(starts)


def sample_attributes(rng: np.random.Generator, prompt: str | None = None) -> ShapeAttributes:
    """Draws attributes (for `prompt` if given: the prompt fixes shape, color, size and direction)."""
    if prompt is None:
        shape, color, size, direction = (
            SHAPES[rng.integers(3)],
            COLORS[rng.integers(4)],
            SIZES[rng.integers(2)],
            DIRECTIONS[rng.integers(4)],
        )
    else:
        size, color, shape, direction = parse_prompt(prompt)
    starts = valid_starts(direction)
    return ShapeAttributes(
        shape=shape,
        color=color,
        size=size,
        direction=direction,
        background=BACKGROUNDS[rng.integers(2)],
        speed=SPEEDS[rng.integers(2)],
        start=starts[rng.integers(len(starts))],
    )


def parse_prompt(prompt: str) -> tuple[str, str, str, str]:
    """`(size, color, shape, direction)` of a prompt `a {size} {color} {shape} moving {direction}`."""
    words = prompt.strip().split()
    if (
        len(words) != 6
        or words[0] != "a"
        or words[4] != "moving"
        or words[1] not in SIZES
        or words[2] not in COLORS
        or words[3] not in SHAPES
        or words[5] not in DIRECTIONS
    ):
        raise ValueError(
            f"prompt must be 'a {{size}} {{color}} {{shape}} moving {{direction}}' with size in {SIZES}, color in "
            f"{COLORS}, shape in {SHAPES}, direction in {DIRECTIONS}; got {prompt!r}"
        )
    return words[1], words[2], words[3], words[5]


def _mask(shape: str, half: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    if shape == "circle":
        return yy**2 + xx**2 <= half**2
    if shape == "square":
        return (np.abs(yy) <= half) & (np.abs(xx) <= half)
    # An upward isosceles triangle inscribed in the same box: apex at the top, base at the bottom.
    inside_rows = np.abs(yy) <= half
    return inside_rows & (np.abs(xx) <= (yy + half) / 2)


def render(attributes: ShapeAttributes, rng: np.random.Generator, num_frames: int = 9, size: int = 32) -> np.ndarray:
    """
    Renders one clip.

    Args:
        attributes ([`ShapeAttributes`]): what to draw.
        rng (`np.random.Generator`): jitter of the start position, the travel and the colors.
        num_frames (`int`, defaults to 9): frames, of the form 4k+1 and at least 9.
        size (`int`, defaults to 32): frame side in pixels (at least 32).

    Returns:
        `np.ndarray`: `(num_frames, size, size, 3)` float32 in [0, 1].

    Raises:
        `ValueError`: for an unsupported clip size, or a start the shape would leave the frame from
            (see [`valid_starts`]).
    """
    if num_frames < 9 or (num_frames - 1) % 4:
        raise ValueError(f"num_frames must be 4k+1 and at least 9, got {num_frames}")
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    if attributes.start not in valid_starts(attributes.direction):
        raise ValueError(
            f"attributes.start must keep a shape moving {attributes.direction} inside the frame: one of "
            f"{valid_starts(attributes.direction)}, got {attributes.start!r}"
        )
    r, c = divmod(START_POSITIONS.index(attributes.start), 3)
    start = np.array([GRID[r], GRID[c]]) + rng.uniform(-JITTER, JITTER, 2)
    travel = TRAVEL[attributes.speed] * rng.uniform(0.9, 1.1)
    step = np.array(DIRECTION_VECTORS[attributes.direction], dtype=np.float64) * travel / (num_frames - 1)
    color = np.clip(np.array(PALETTE[attributes.color]) + rng.uniform(-0.04, 0.04, 3), 0, 1)
    background = np.array(BACKGROUND_VALUES[attributes.background])
    half = HALF_SIZES[attributes.size] * size

    fine = size * SUPERSAMPLING
    coordinates = (np.arange(fine) + 0.5) / SUPERSAMPLING
    frames = np.empty((num_frames, size, size, 3), dtype=np.float32)
    for f in range(num_frames):
        centre = (start + step * f) * size
        yy = coordinates[:, None] - centre[0]
        xx = coordinates[None, :] - centre[1]
        coverage = _mask(attributes.shape, half, yy, xx).astype(np.float32)
        coverage = coverage.reshape(size, SUPERSAMPLING, size, SUPERSAMPLING).mean(axis=(1, 3))[..., None]
        frames[f] = coverage * color + (1 - coverage) * background
    return frames


@dataclass
class ShapeClip:
    """One sample of the world: frames `(F, H, W, 3)` float32 in [0, 1], its attributes and texts."""

    frames: np.ndarray
    attributes: ShapeAttributes
    prompt: str
    caption: str


def generate_clips(
    num_clips: int, seed: int = 0, split: str = "train", num_frames: int = 9, size: int = 32
) -> Iterator[ShapeClip]:
    """
    An iterator over `num_clips` clips, deterministic in `seed` (the arguments are checked at the call, not at the
    first clip).

    Args:
        num_clips (`int`): how many.
        seed (`int`): the seed (clip `i` depends only on `(seed, i)`).
        split (`str`): `"train"` (prompts outside `HELD_OUT_PROMPTS`), `"held_out"` (only them) or `"all"`.
        num_frames, size (`int`): clip size (4k+1 >= 9 frames, >= 32 pixels).

    Returns:
        `Iterator[ShapeClip]`

    Raises:
        `ValueError`: for an unknown `split`, a negative `num_clips` or an unsupported clip size.
    """
    _check_clip_arguments(num_clips, split, num_frames, size)
    return _clips(num_clips, seed, split, num_frames, size)


def _check_clip_arguments(num_clips, split, num_frames, size) -> None:
    """Raises `ValueError` for arguments `generate_clips` / `shapes_dataset` / `export_folder` cannot honour."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(num_clips, int) or isinstance(num_clips, bool) or num_clips < 0:
        raise ValueError(f"num_clips must be a non-negative integer, got {num_clips!r}")
    if not isinstance(num_frames, int) or num_frames < 9 or (num_frames - 1) % 4:
        raise ValueError(f"num_frames must be 4k+1 and at least 9, got {num_frames!r}")
    if not isinstance(size, int) or size < 32:
        raise ValueError(f"size must be at least 32 pixels (an integer), got {size!r}")


def _clips(num_clips: int, seed: int, split: str, num_frames: int, size: int) -> Iterator[ShapeClip]:
    prompts = {"train": TRAIN_PROMPTS, "held_out": HELD_OUT_PROMPTS, "all": ALL_PROMPTS}[split]
    for index in range(num_clips):
        rng = np.random.default_rng([seed, index])
        attributes = sample_attributes(rng, prompts[rng.integers(len(prompts))])
        frames = render(attributes, rng, num_frames=num_frames, size=size)
        template = int(rng.integers(len(CAPTION_TEMPLATES)))
        yield ShapeClip(frames, attributes, attributes.prompt, attributes.caption(template))


def shapes_dataset(num_clips: int, seed: int = 0, split: str = "train", num_frames: int = 9, size: int = 32):
    """
    The world as a `datasets.Dataset` (built with `Dataset.from_generator`): columns `video` (uint8
    `(F, H, W, 3)`), `prompt`, `caption` and one string column per attribute.
    """
    import datasets

    _check_clip_arguments(num_clips, split, num_frames, size)
    features = datasets.Features(
        {
            "video": datasets.Array4D(shape=(num_frames, size, size, 3), dtype="uint8"),
            "prompt": datasets.Value("string"),
            "caption": datasets.Value("string"),
            **{name: datasets.Value("string") for name in ShapeAttributes.__dataclass_fields__},
        }
    )

    def rows():
        for clip in generate_clips(num_clips, seed, split, num_frames, size):
            yield {
                "video": np.round(clip.frames * 255).astype(np.uint8),
                "prompt": clip.prompt,
                "caption": clip.caption,
                **clip.attributes.to_dict(),
            }

    return datasets.Dataset.from_generator(rows, features=features, gen_kwargs={}, cache_dir=None, keep_in_memory=True)


def export_folder(
    folder: str | os.PathLike,
    num_clips: int,
    seed: int = 0,
    split: str = "train",
    num_frames: int = 9,
    size: int = 32,
    fps: int = 8,
) -> str:
    """
    Writes clips as mp4 files plus a `metadata.jsonl` (`file_name`, `prompt`, `caption` and the attributes): the
    folder convention the training scripts read (`--dataset_name folder`). The folder is written atomically: into a
    staging folder that is then moved into place, `metadata.jsonl` last, so an interrupted export leaves no folder
    that reads as a dataset (see [`univigu_hf.utils.saving`]).

    Returns:
        `str`: the folder.
    """
    from diffusers.utils import export_to_video

    with atomic_directory(folder, markers=("metadata.jsonl",)) as staging:
        _export_clips(staging, export_to_video, num_clips, seed, split, num_frames, size, fps)
    return os.fspath(folder)


def _export_clips(folder, export_to_video, num_clips, seed, split, num_frames, size, fps) -> None:
    # Encoding runs in ffmpeg processes, so clips are written by a few threads while the next ones are rendered.
    with ThreadPoolExecutor(max_workers=_EXPORT_WORKERS) as pool:
        pending = collections.deque()
        with open(os.path.join(folder, "metadata.jsonl"), "w", encoding="utf-8") as handle:
            for index, clip in enumerate(generate_clips(num_clips, seed, split, num_frames, size)):
                name = f"{split}_{seed}_{index:05d}.mp4"
                path = os.path.join(folder, name)
                pending.append(pool.submit(export_to_video, list(clip.frames), path, fps=fps, macro_block_size=1))
                row = {"file_name": name, "prompt": clip.prompt, "caption": clip.caption, **clip.attributes.to_dict()}
                handle.write(json.dumps(row) + "\n")
                while len(pending) > 2 * _EXPORT_WORKERS:
                    pending.popleft().result()
            for write in pending:
                write.result()


def world_text() -> list[str]:
    """Every word sequence the world uses (for training a tokenizer on the world's text)."""
    texts = list(ALL_PROMPTS)
    for shape, color, size, direction in itertools.product(SHAPES, COLORS, SIZES, DIRECTIONS):
        for background, speed, start in itertools.product(BACKGROUNDS, SPEEDS, valid_starts(direction)):
            attributes = ShapeAttributes(shape, color, size, direction, background, speed, start)
            texts.extend(attributes.caption(t) for t in range(len(CAPTION_TEMPLATES)))
    return texts
