"""Scoring for the shapes world (`univigu_hf.shapes`): read attributes back from videos and captions.

- [`detect_attributes`] reads the seven attributes of a clip from its pixels (background, color, size, shape,
  direction, speed, start position), robustly enough for noisy or compressed frames;
- [`parse_caption`] reads the attributes a prompt or detailed caption states;
- [`score_videos`] (text-to-video: does the video show what the prompt asked for?) and [`score_captions`]
  (video-to-text: does the caption state the clip's true attributes?) turn them into per-attribute accuracies.

The same scores are bundled as local `evaluate` metrics (loaded offline from the installed package):

    >>> from univigu_hf.shapes.scoring import load_metric
    >>> metric = load_metric("shapes_caption_accuracy")
    >>> metric.compute(predictions=["a small red circle moving left"], references=["a small red circle moving up"])
    {'shape_accuracy': 1.0, 'color_accuracy': 1.0, 'size_accuracy': 1.0, 'direction_accuracy': 0.0, ...}

See [`metric_path`] for the names (`shapes_caption_accuracy`, `shapes_video_accuracy`, `caption_text_similarity`).
"""

import importlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .world import (
    ATTRIBUTE_VALUES,
    BACKGROUND_VALUES,
    BACKGROUNDS,
    COLORS,
    DIRECTION_VECTORS,
    DIRECTIONS,
    GRID,
    HALF_SIZES,
    PALETTE,
    SHAPES,
    SIZES,
    SPEEDS,
    START_POSITIONS,
    TRAVEL,
    ShapeAttributes,
)


ATTRIBUTES = ("shape", "color", "size", "direction", "background", "speed", "start")
PROMPT_ATTRIBUTES = ("shape", "color", "size", "direction")
UNKNOWN = "unknown"
VOCABULARY = ATTRIBUTE_VALUES
METRICS = ("shapes_caption_accuracy", "shapes_video_accuracy", "caption_text_similarity")

# ----- detector constants (lengths in fractions of the frame side) ---------------------------------------------------
# A pixel is foreground when it is farther from the background than this fraction of the distance between the
# background and the nearest palette color (0.5: at least half covered by the shape). The silhouette is measured on
# the foreground plus the pixels at least `_EDGE_FRACTION` covered within 2 pixels of it (blurred edges), dilated by
# one pixel.
_FOREGROUND_FRACTION = 0.5
_EDGE_FRACTION = 0.25
# A frame whose foreground is smaller than this fraction of the median foreground area, or larger than its inverse,
# is not used (shape lost, or a corrupted frame).
_MIN_AREA_FRACTION = 0.3
# Shape: cumulants of the sub-pixel coverage (in units of the area, so independent of size and unchanged by a
# symmetric separable blur: anti-aliasing, chroma subsampling, a blurry generator), normalized by their values for
# the shape they single out:
# - asymmetry: the third vertical cumulant, 1 for the apex-up triangle (a triangular distribution over its height
#   h: -h**3 / 135 for an area h**2 / 2), 0 for the square and the circle. Blur and chroma subsampling shrink it for
#   small triangles (down to ~0.2-0.5 after an mp4 round trip) while circles and squares stay within ~0.3, hence 0.4;
# - roundness: the joint fourth cumulant, 1 for the circle (-r**4 / 48 for an area pi r**2), 0 for the square (rows
#   and columns independent), 0.88 for the triangle (so the triangle is tested first). It is averaged with the fill
#   ratio `area / (widest row x tallest column)` mapped the same way (circle pi/4 -> 1, square 1 -> 0): the
#   cumulant resists blur, the fill ratio resists pixel noise.
_TRIANGLE_THIRD = -4 / (135 * np.sqrt(2))
_CIRCLE_JOINT_FOURTH = -1 / (48 * np.pi**2)
_TRIANGLE_THRESHOLD = 0.4
_CIRCLE_THRESHOLD = 0.5
# Size: the half-size `sqrt(area / k)` of the detected shape (area = k * half**2) against the geometric mean of the
# two half-sizes.
_AREA_PER_HALF_SQUARED = {"square": 4.0, "circle": float(np.pi), "triangle": 2.0}
_SIZE_THRESHOLD = float(np.sqrt(HALF_SIZES["small"] * HALF_SIZES["large"]))
# Speed: the displacement over the clip against the midpoint of the two travels (each +-10%).
_SPEED_THRESHOLD = (TRAVEL["slowly"] + TRAVEL["quickly"]) / 2
# Below this displacement the shape does not move and the direction is unknown.
_MIN_DISPLACEMENT = TRAVEL["slowly"] / 4
_MEASUREMENTS = (
    "color_value",
    "area",
    "extent",
    "fill_ratio",
    "asymmetry",
    "roundness",
    "displacement",
    "start_position",
)


# ----- input conversion -------------------------------------------------------------------------------------------------
def _to_frames(frames: Any) -> np.ndarray:
    """`frames` as a float64 `(F, H, W, 3)` array in [0, 1] (see [`detect_attributes`] for the accepted inputs)."""
    if isinstance(frames, (list, tuple)):
        if len(frames) == 0:
            raise ValueError("frames must hold at least 2 frames, got an empty sequence")
        first = frames[0]
        if hasattr(first, "convert") and hasattr(first, "size"):  # PIL images
            array = np.stack([np.asarray(image.convert("RGB")) for image in frames])
        else:
            try:
                array = np.stack(
                    [_tensor_to_numpy(frame) if _is_tensor(frame) else np.asarray(frame) for frame in frames]
                )
            except ValueError as error:
                raise ValueError(f"frames must all have the same shape (H, W, 3): {error}") from None
    elif _is_tensor(frames):
        array = _tensor_to_numpy(frames)
    elif isinstance(frames, np.ndarray):
        array = frames
    else:
        raise ValueError(
            "frames must be a numpy array (F, H, W, 3), a torch tensor (F, 3, H, W) or a list of PIL images, got "
            f"{type(frames).__name__}"
        )
    if array.dtype == object or array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"frames must have shape (F, H, W, 3) (or (F, 3, H, W) for torch tensors), got {array.shape}")
    if array.shape[0] < 2:
        raise ValueError(f"frames must hold at least 2 frames to show motion, got {array.shape[0]}")
    if array.shape[1] < 8 or array.shape[2] < 8:
        raise ValueError(f"frames must be at least 8x8 pixels, got {array.shape[1]}x{array.shape[2]}")
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"frames must be uint8 or floating point, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"integer frames must be uint8 (0..255), got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError("frames must be finite (found NaN or inf)")
    low, high = float(array.min()), float(array.max())
    if low < -0.5 or high > 1.5:
        raise ValueError(
            f"float frames must be in [0, 1] (small excursions from noise are fine), got values in [{low:.3g}, "
            f"{high:.3g}]; divide 0..255 frames by 255 and map [-1, 1] frames with (x + 1) / 2"
        )
    return array


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _tensor_to_numpy(tensor: Any) -> np.ndarray:
    array = tensor.detach().cpu()
    array = array.numpy() if str(array.dtype) == "torch.uint8" else array.float().numpy()
    # torch video frames are channels-first: (F, 3, H, W), or (3, H, W) for one frame; channels-last is accepted too.
    channel_axis = array.ndim - 3
    if array.ndim in (3, 4) and array.shape[channel_axis] == 3:
        array = np.moveaxis(array, channel_axis, -1)
    return array


# ----- pixel measurements ----------------------------------------------------------------------------------------------
def _largest_components(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of each frame of a boolean `(F, H, W)` mask."""
    num_frames, height, width = mask.shape
    labels = np.where(mask, np.arange(1, mask.size + 1).reshape(mask.shape), 0)
    for _ in range(height * width):
        padded = np.pad(labels, ((0, 0), (1, 1), (1, 1)))
        neighbours = np.max(
            [padded[:, dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)], axis=0
        )
        updated = np.where(mask, neighbours, 0)
        if np.array_equal(updated, labels):
            break
        labels = updated
    counts = np.bincount(labels.ravel(), minlength=mask.size + 1)[1:].reshape(num_frames, height * width)
    best = counts.argmax(axis=1) + 1 + np.arange(num_frames) * height * width
    return (labels == best[:, None, None]) & (counts.max(axis=1) > 0)[:, None, None]


def _dilate(mask: np.ndarray) -> np.ndarray:
    height, width = mask.shape[-2:]
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    return np.any([padded[:, dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)], axis=0)


def _theil_sen(times: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Robust line fit `values ~ intercept + slope * times` (median of pairwise slopes): `(slope, intercept)`."""
    if len(times) < 2:
        return 0.0, float(values[0])
    i, j = np.triu_indices(len(times), k=1)
    slope = float(np.median((values[j] - values[i]) / (times[j] - times[i])))
    return slope, float(np.median(values - slope * times))


def _trimmed_mean(values: np.ndarray, proportion: float = 0.2) -> float:
    """Mean without the `proportion` lowest and highest values (robust to a few bad frames, less noisy than a median)."""
    values = np.sort(values)
    cut = int(proportion * len(values))
    return float(values[cut : len(values) - cut].mean())


def _nearest(value: np.ndarray, table: Mapping[str, Sequence[float]]) -> str:
    names = list(table)
    distances = [np.linalg.norm(value - np.asarray(table[name])) for name in names]
    return names[int(np.argmin(distances))]


def measure_clip(frames: Any) -> dict[str, Any]:
    """
    The measurements behind [`detect_attributes`] (lengths in fractions of the frame side, rows before columns).

    Args:
        frames: a clip, as accepted by [`detect_attributes`].

    Returns:
        `dict`: `background_value` (RGB, median of the border), `color_value` (RGB of the shape's fully covered
        pixels), `area` (fraction of the frame), `extent` (widest row or tallest column), `fill_ratio` (area / (widest
        row x tallest column)), `asymmetry` (1 for the apex-up triangle, 0 for symmetric shapes), `roundness` (1 for
        the circle, 0 for the square), all trimmed means over the frames where the shape is fully inside the
        picture; `displacement` (row, column) over the clip and `start_position` (row, column) of the centroid in the
        first frame, from robust line fits; `num_valid_frames` (frames where the shape was found). Without a
        foreground, everything but `background_value` is `None` and `num_valid_frames` is 0.
    """
    video = _to_frames(frames)
    num_frames, height, width, _ = video.shape
    side = float(min(height, width))

    border = np.concatenate([video[:, 0], video[:, -1], video[:, 1:-1, 0], video[:, 1:-1, -1]], axis=1).reshape(-1, 3)
    background_value = np.median(border, axis=0)
    result: dict[str, Any] = {"background_value": background_value, "num_valid_frames": 0}
    result.update(dict.fromkeys(_MEASUREMENTS))

    # Foreground: farther from the background than half the way to the nearest palette color.
    contrast = min(np.linalg.norm(np.asarray(color) - background_value) for color in PALETTE.values())
    distance = np.linalg.norm(video - background_value, axis=-1)
    mask = _largest_components(distance > _FOREGROUND_FRACTION * contrast)
    areas = mask.sum(axis=(1, 2))
    if areas.max() == 0:
        return result
    typical = np.median(areas[areas > 0])
    valid = (areas >= _MIN_AREA_FRACTION * typical) & (areas <= typical / _MIN_AREA_FRACTION)

    # Color: per frame, the median of the fully covered pixels (the part of the mask farthest from the background,
    # away from anti-aliased edges); then the median over frames.
    colors = []
    for f in np.flatnonzero(valid):
        pixels, far = video[f][mask[f]], distance[f][mask[f]]
        colors.append(np.median(pixels[far >= 0.8 * np.quantile(far, 0.9)], axis=0))
    color_value = np.median(colors, axis=0)
    result["color_value"] = color_value

    # Coverage alpha in [0, 1] along the background -> shape color line, summed over the region around the component,
    # so that areas, moments and centroids are sub-pixel and noise averages out. The background level here is the
    # mean of everything outside the region (unbiased where noise was clipped at 0 or 1, unlike the median).
    near = _dilate(_dilate(mask)) & (distance > _EDGE_FRACTION * contrast)
    region = _dilate(mask | near)
    outside = ~region & valid[:, None, None]
    background_level = video[outside].mean(axis=0) if outside.any() else background_value
    direction = color_value - background_level
    alpha = (video - background_level) @ direction / max(float(direction @ direction), 1e-6)
    alpha = np.where(region, alpha, 0.0)
    # Moments in pixels (isotropic), positions in fractions of the height / width.
    rows = (np.arange(height) + 0.5)[:, None]
    columns = (np.arange(width) + 0.5)[None, :]

    per_frame = {key: [] for key in ("area", "extent", "fill_ratio", "asymmetry", "roundness")}
    track, touches = [], []
    for f in np.flatnonzero(valid):
        a = alpha[f]
        area = a.sum()
        if area <= 0:
            continue
        weights = a / area
        cy, cx = (weights * rows).sum(), (weights * columns).sum()
        dy, dx = rows - cy, columns - cx
        var_y, var_x, cov = (weights * dy**2).sum(), (weights * dx**2).sum(), (weights * dy * dx).sum()
        # Cumulants are unchanged by a symmetric, separable blur (anti-aliasing, chroma subsampling, a blurry
        # generator): the third vertical one is non-zero only for the apex-up triangle, the joint fourth one is zero
        # for the square (independent rows and columns) and negative for the circle.
        third = (weights * dy**3).sum()
        joint_fourth = (weights * dy**2 * dx**2).sum() - var_y * var_x - 2 * cov**2
        widest, tallest = a.sum(axis=1).max(), a.sum(axis=0).max()
        per_frame["area"].append(area / side**2)
        per_frame["extent"].append(max(widest, tallest) / side)
        per_frame["fill_ratio"].append(area / max(widest * tallest, 1e-12))
        per_frame["asymmetry"].append(third / area**1.5 / _TRIANGLE_THIRD)
        per_frame["roundness"].append(joint_fourth / area**2 / _CIRCLE_JOINT_FOURTH)
        track.append((f, cy / height, cx / width))
        touches.append(bool(region[f][[0, -1]].any() or region[f][:, [0, -1]].any()))
    if not track:
        return result
    track = np.asarray(track)
    row_slope, row_start = _theil_sen(track[:, 0], track[:, 1])
    column_slope, column_start = _theil_sen(track[:, 0], track[:, 2])
    # Frames where the shape leaves the picture are clipped: the silhouette uses the others (when there are some).
    inside = ~np.asarray(touches) if not all(touches) else np.ones(len(touches), dtype=bool)
    result.update({key: _trimmed_mean(np.asarray(values)[inside]) for key, values in per_frame.items()})
    result.update(
        displacement=(row_slope * (num_frames - 1), column_slope * (num_frames - 1)),
        start_position=(row_start, column_start),
        num_valid_frames=len(track),
    )
    return result


def detect_attributes(frames: Any) -> dict[str, str]:
    """
    Reads the attributes of a shapes-world clip back from its pixels.

    Every detector uses the rendering constants of `univigu_hf.shapes` with thresholds between the values it
    separates, works on the sub-pixel coverage of the shape and aggregates over frames with trimmed means, medians or
    robust (Theil-Sen) line fits, so a few bad frames, pixel noise or video compression do not flip the answer:

    - `background`: the nearest background value to the median border pixel;
    - foreground: pixels farther from the background than half the way to the nearest palette color, largest
      connected component per frame;
    - `color`: the nearest palette color to the median of the shape's fully covered pixels;
    - `shape`: blur-invariant cumulants of the silhouette: its vertical asymmetry singles out the apex-up triangle,
      its joint fourth cumulant (averaged with the fill ratio `area / (widest row x tallest column)`) tells the
      circle from the square (see `measure_clip`);
    - `size`: the half-size `sqrt(area / k)` of the detected shape (`area = k * half**2`), small below the geometric
      mean of the two half-sizes;
    - `direction` / `speed`: the dominant axis and sign / the magnitude of the centroid displacement over the clip
      (`"unknown"` direction when the shape does not move);
    - `start`: the grid cell nearest to the fitted first-frame position (box centre: the triangle's centroid is
      corrected by a sixth of its height).

    Args:
        frames (`np.ndarray`, `torch.Tensor` or `list[PIL.Image.Image]`): one clip: a float `(F, H, W, 3)` array in
            [0, 1] or a uint8 one, a torch tensor `(F, 3, H, W)` (float in [0, 1] or uint8), or a list of PIL images
            / `(H, W, 3)` arrays. At least 2 frames of at least 8x8 pixels.

    Returns:
        `dict[str, str]`: one word of the world's vocabulary per attribute of `ATTRIBUTES` (`"start"` is a
        `START_POSITIONS` name); `"unknown"` for the shape attributes when no foreground is found.

    Raises:
        `ValueError`: when `frames` has the wrong type, shape, dtype or value range.
    """
    measured = measure_clip(frames)
    attributes = {"background": _nearest(measured["background_value"], BACKGROUND_VALUES)}
    if measured["num_valid_frames"] == 0:
        attributes.update({name: UNKNOWN for name in ATTRIBUTES if name != "background"})
        return {name: attributes[name] for name in ATTRIBUTES}

    attributes["color"] = _nearest(measured["color_value"], PALETTE)
    circle_score = (measured["roundness"] + (1 - measured["fill_ratio"]) / (1 - np.pi / 4)) / 2
    if measured["asymmetry"] > _TRIANGLE_THRESHOLD:
        shape = "triangle"
    elif circle_score > _CIRCLE_THRESHOLD:
        shape = "circle"
    else:
        shape = "square"
    attributes["shape"] = shape
    half = np.sqrt(measured["area"] / _AREA_PER_HALF_SQUARED[shape])
    size = "large" if half > _SIZE_THRESHOLD else "small"
    attributes["size"] = size

    displacement = np.asarray(measured["displacement"])
    axis = int(np.argmax(np.abs(displacement)))
    magnitude = float(abs(displacement[axis]))
    if magnitude < _MIN_DISPLACEMENT:
        attributes["direction"] = UNKNOWN
    else:
        step = (int(np.sign(displacement[0])), 0) if axis == 0 else (0, int(np.sign(displacement[1])))
        attributes["direction"] = next(name for name, vector in DIRECTION_VECTORS.items() if tuple(vector) == step)
    attributes["speed"] = "quickly" if magnitude > _SPEED_THRESHOLD else "slowly"

    row, column = measured["start_position"]
    if shape == "triangle":  # the centroid of the apex-up triangle lies a sixth of its height below the box centre
        row -= HALF_SIZES[size] / 3
    grid = np.asarray(GRID)
    r, c = int(np.argmin(np.abs(grid - row))), int(np.argmin(np.abs(grid - column)))
    attributes["start"] = START_POSITIONS[3 * r + c]
    return {name: attributes[name] for name in ATTRIBUTES}


# ----- captions ---------------------------------------------------------------------------------------------------------
def _alternatives(words: Iterable[str]) -> str:
    # Longest first, so "top left" wins over "top"; spaces match any whitespace.
    return "|".join(re.escape(word).replace(r"\ ", r"\s+") for word in sorted(words, key=len, reverse=True))


_CAPTION_PATTERNS = {
    "shape": re.compile(rf"\b({_alternatives(SHAPES)})\b"),
    "color": re.compile(rf"\b({_alternatives(COLORS)})\b"),
    "size": re.compile(rf"\b({_alternatives(SIZES)})\b"),
    # "left"/"right" are both directions and start positions: a direction follows "moving", a start "from/at the".
    "direction": re.compile(rf"\bmoving\s+({_alternatives(DIRECTIONS)})\b"),
    "background": re.compile(rf"\b({_alternatives(BACKGROUNDS)})\s+(?:background|frame)\b"),
    "speed": re.compile(rf"\b({_alternatives(SPEEDS)})\b"),
    "start": re.compile(rf"\b(?:from|at)\s+the\s+({_alternatives(START_POSITIONS)})\b"),
}


def parse_caption(text: str) -> dict[str, str | None]:
    """
    The attributes a prompt or detailed caption states.

    Matches the world's fixed vocabulary (case-insensitive): a direction after "moving", a start position after
    "from the" / "at the", a background before "background" / "frame", the other words anywhere. An attribute that is
    not stated, or stated with conflicting values ("a red blue circle"), is `None`.

    Args:
        text (`str`): a prompt (`a {size} {color} {shape} moving {direction}`), a detailed caption (any of
            `CAPTION_TEMPLATES`) or a generated caption.

    Returns:
        `dict[str, str | None]`: one entry per attribute of `ATTRIBUTES`.

    Raises:
        `TypeError`: when `text` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str (a prompt or caption), got {type(text).__name__}: {text!r}")
    normalized = " ".join(text.lower().split())
    parsed: dict[str, str | None] = {}
    for name, pattern in _CAPTION_PATTERNS.items():
        values = {" ".join(match.split()) for match in pattern.findall(normalized)}
        parsed[name] = values.pop() if len(values) == 1 else None
    return parsed


# ----- scores -----------------------------------------------------------------------------------------------------------
def _check_attributes(attributes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(attributes, str) or not all(name in ATTRIBUTES for name in attributes):
        raise ValueError(f"attributes must be a sequence of names from {ATTRIBUTES}, got {attributes!r}")
    return tuple(attributes)


def _check_lengths(predictions: Sequence[Any], references: Sequence[Any], names: str) -> None:
    first, second = names.split(" and ")
    if isinstance(predictions, (str, bytes)) or isinstance(references, (str, bytes)):
        raise ValueError(f"{first} and {second} must be sequences (one item per sample), not single strings")
    if len(predictions) != len(references):
        raise ValueError(
            f"{first} and {second} must have the same length, got {len(predictions)} and {len(references)}"
        )


def as_attributes(reference: Any) -> dict[str, str | None]:
    """
    A reference (or prediction) as an attribute dict.

    Args:
        reference (`str`, `dict` or [`ShapeAttributes`]): a prompt or caption (parsed with [`parse_caption`]), a JSON
            object string of attributes, an attribute dict (keys that are not attributes, like `prompt` or `video`
            in a dataset row, are ignored) or a `ShapeAttributes`.

    Returns:
        `dict[str, str | None]`: one entry per attribute of `ATTRIBUTES` (`None` when not stated).

    Raises:
        `ValueError`: for another type, invalid JSON, a dict without any attribute, or a stated value outside the
        world's vocabulary (`VOCABULARY`).
    """
    if isinstance(reference, ShapeAttributes):
        reference = reference.to_dict()
    elif isinstance(reference, str):
        if not reference.lstrip().startswith("{"):
            return parse_caption(reference)
        try:
            reference = json.loads(reference)
        except json.JSONDecodeError as error:
            raise ValueError(f"reference looks like JSON but does not parse: {reference!r}") from error
    if not isinstance(reference, Mapping):
        raise ValueError(
            "a reference must be a prompt or caption, an attribute dict or JSON object string, or a ShapeAttributes, "
            f"got {type(reference).__name__}"
        )
    if not any(name in reference for name in ATTRIBUTES):
        raise ValueError(f"reference states none of the attributes {ATTRIBUTES}: {dict(reference)!r}")
    attributes = {name: reference.get(name) for name in ATTRIBUTES}
    for name, value in attributes.items():
        if value is not None and value not in VOCABULARY[name]:
            raise ValueError(f"reference {name} must be one of {VOCABULARY[name]} (or None), got {value!r}")
    return attributes


def score_attributes(
    predictions: Sequence[Mapping[str, Any]],
    references: Sequence[Any],
    attributes: Sequence[str] = ATTRIBUTES,
) -> dict[str, Any]:
    """
    Per-attribute accuracy of predicted attribute dicts, with counts.

    Args:
        predictions (`Sequence[dict]`): predicted attributes (a missing, `None` or `"unknown"` value is wrong).
        references (`Sequence`): one reference per prediction, anything [`as_attributes`] accepts; an attribute
            that a reference does not state is not scored for that pair.
        attributes (`Sequence[str]`, defaults to `ATTRIBUTES`): which attributes to score.

    Returns:
        `dict`: `accuracy` (attribute -> accuracy, for every attribute that at least one reference states),
        `mean_accuracy` (mean over those attributes, `nan` if none), `counts` (attribute -> number of scored pairs)
        and `num_samples`.
    """
    attributes = _check_attributes(attributes)
    _check_lengths(predictions, references, "predictions and references")
    if not all(isinstance(prediction, Mapping) for prediction in predictions):
        raise ValueError("predictions must be attribute dicts")
    references = [as_attributes(reference) for reference in references]
    accuracy, counts = {}, {}
    for name in attributes:
        hits = [
            prediction.get(name) == reference[name]
            for prediction, reference in zip(predictions, references)
            if reference[name] is not None
        ]
        if hits:
            accuracy[name], counts[name] = float(np.mean(hits)), len(hits)
    return {
        "accuracy": accuracy,
        "mean_accuracy": float(np.mean(list(accuracy.values()))) if accuracy else float("nan"),
        "counts": counts,
        "num_samples": len(predictions),
    }


def attribute_accuracy(
    predictions: Sequence[Mapping[str, Any]],
    references: Sequence[Any],
    attributes: Sequence[str] = ATTRIBUTES,
) -> dict[str, float]:
    """
    Per-attribute accuracy of attribute dicts against reference attribute dicts.

    Args:
        predictions (`Sequence[dict]`): predicted attributes (a missing, `None` or `"unknown"` value is wrong).
        references (`Sequence[dict]`): true attributes, one per prediction (or anything [`as_attributes`]
            accepts); an attribute that a reference does not state (missing or `None`) is not scored for that pair.
        attributes (`Sequence[str]`, defaults to `ATTRIBUTES`): which attributes to score.

    Returns:
        `dict[str, float]`: the accuracy of every attribute that at least one reference states.

    Raises:
        `ValueError`: when the lengths differ, an attribute name is unknown or a reference is invalid.
    """
    return score_attributes(predictions, references, attributes)["accuracy"]


def score_videos(
    videos: Iterable[Any], attributes_or_prompts: Sequence[Any], attributes: Sequence[str] = ATTRIBUTES
) -> dict[str, Any]:
    """
    How well videos show what was asked for: [`detect_attributes`] of each video against its intended attributes.

    Args:
        videos: clips as accepted by [`detect_attributes`] (a list, or a batch array/tensor with a leading batch
            dimension).
        attributes_or_prompts (`Sequence`): one reference per video: a prompt (scores the 4 prompt attributes), a
            detailed caption, an attribute dict / JSON string or a [`ShapeAttributes`] (every stated attribute).
        attributes (`Sequence[str]`, defaults to `ATTRIBUTES`): which attributes to score.

    Returns:
        `dict`: `accuracy` (attribute -> accuracy), `mean_accuracy` (over the scored attributes), `counts`
        (attribute -> number of scored videos) and `num_samples` (see [`score_attributes`]).

    Example:

    ```python
    >>> from univigu_hf import shapes
    >>> clips = list(shapes.generate_clips(8, seed=0, split="all"))
    >>> score_videos([clip.frames for clip in clips], [clip.prompt for clip in clips])["mean_accuracy"]
    1.0
    ```
    """
    videos = list(videos)
    _check_lengths(videos, attributes_or_prompts, "videos and attributes_or_prompts")
    references = [as_attributes(reference) for reference in attributes_or_prompts]
    return score_attributes([detect_attributes(video) for video in videos], references, attributes)


def score_captions(
    captions: Sequence[str], references: Sequence[Any], attributes: Sequence[str] = ATTRIBUTES
) -> dict[str, Any]:
    """
    How well captions describe their clips: [`parse_caption`] of each caption against the true attributes.

    Args:
        captions (`Sequence[str]`): generated captions.
        references (`Sequence`): one per caption: a ground-truth attribute dict / JSON string / [`ShapeAttributes`],
            or a ground-truth caption or prompt (then only the attributes it states are scored).
        attributes (`Sequence[str]`, defaults to `ATTRIBUTES`): which attributes to score.

    Returns:
        `dict`: `accuracy` (attribute -> accuracy), `mean_accuracy`, `counts` (attribute -> number of scored
        captions) and `num_samples` (see [`score_attributes`]).
    """
    _check_lengths(captions, references, "captions and references")
    return score_attributes([parse_caption(caption) for caption in captions], references, attributes)


def flatten_scores(scores: Mapping[str, Any]) -> dict[str, float]:
    """
    A [`score_attributes`] result as flat floats, the form the bundled `evaluate` metrics return.

    Args:
        scores (`dict`): the output of [`score_attributes`], [`score_videos`] or [`score_captions`].

    Returns:
        `dict[str, float]`: `{attribute}_accuracy` per scored attribute, `mean_accuracy` and `num_samples`.
    """
    flat = {f"{name}_accuracy": value for name, value in scores["accuracy"].items()}
    flat["mean_accuracy"] = scores["mean_accuracy"]
    flat["num_samples"] = scores["num_samples"]
    return flat


# ----- bundled evaluate metrics -----------------------------------------------------------------------------------------
def metric_path(name: str) -> str:
    """
    The folder of a bundled `evaluate` metric (for `evaluate.load(metric_path(name))`, which works offline).

    Args:
        name (`str`): one of `METRICS`: `"shapes_caption_accuracy"`, `"shapes_video_accuracy"` or
            `"caption_text_similarity"` (needs the `eval` extra: `pip install univigu_hf[eval]`).

    Returns:
        `str`: the absolute path of the metric folder.
    """
    if name not in METRICS:
        raise ValueError(f"name must be one of {METRICS}, got {name!r}")
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics", name)


def load_metric(name: str, **kwargs):
    """
    `evaluate.load(metric_path(name), **kwargs)`: a bundled metric as an `evaluate.Metric`.

    Args:
        name (`str`): one of `METRICS`.
        **kwargs: passed to `evaluate.load`.

    Returns:
        `evaluate.EvaluationModule`: the loaded metric.
    """
    import evaluate

    return evaluate.load(metric_path(name), **kwargs)


def require_text_similarity() -> None:
    """
    Checks that the packages behind [`text_similarity`] (the `eval` extra) are installed.

    Raises:
        `ImportError`: naming the `eval` extra, when `sacrebleu` or `rouge-score` is missing.
    """
    missing = []
    for module, package in (("sacrebleu", "sacrebleu>=2.4"), ("rouge_score", "rouge-score>=0.1.2")):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ImportError(
            f"caption text similarity needs {' and '.join(missing)}: install the `eval` extra "
            "(`pip install 'univigu_hf[eval]'`)"
        )


def text_similarity(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """
    Caption text similarity: corpus BLEU (`sacrebleu.corpus_bleu`, 0..100) and ROUGE-L F1 (`rouge_score`, with
    stemming, 0..1) averaged over the pairs.

    Args:
        predictions (`Sequence[str]`): generated captions.
        references (`Sequence[str]`): one reference caption per prediction.

    Returns:
        `dict[str, float]`: `bleu` and `rougeL` (`nan` without samples).

    Raises:
        `ImportError`: without `sacrebleu` / `rouge-score` (`pip install 'univigu_hf[eval]'`).
        `ValueError`: when the inputs are not sequences of strings of the same length.
    """
    _check_lengths(predictions, references, "predictions and references")
    if not all(isinstance(text, str) for text in [*predictions, *references]):
        raise ValueError("predictions and references must be strings")
    require_text_similarity()
    import sacrebleu
    from rouge_score import rouge_scorer

    if not predictions:
        return {"bleu": float("nan"), "rougeL": float("nan")}
    bleu = sacrebleu.corpus_bleu(list(predictions), [list(references)]).score
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [
        scorer.score(target, prediction)["rougeL"].fmeasure for prediction, target in zip(predictions, references)
    ]
    return {"bleu": float(bleu), "rougeL": float(np.mean(rouge))}


class StringEncodedInputsMixin:
    """
    For the bundled `evaluate.Metric`s, whose stored features are strings: predictions and references are encoded as
    they are added (`_encode_prediction`, `_encode_reference`; attribute dicts become JSON), so large inputs such as
    videos never enter evaluate's Arrow table.
    """

    def _encode_prediction(self, prediction):
        return prediction

    def _encode_reference(self, reference):
        return reference if isinstance(reference, str) else json.dumps(as_attributes(reference))

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Adds a batch of predictions and references, encoded."""
        if predictions is not None:
            predictions = [self._encode_prediction(prediction) for prediction in predictions]
        if references is not None and not isinstance(references, str):
            references = [self._encode_reference(reference) for reference in references]
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Adds one prediction and reference, encoded."""
        if prediction is not None:
            prediction = self._encode_prediction(prediction)
        if reference is not None:
            reference = self._encode_reference(reference)
        return super().add(prediction=prediction, reference=reference, **kwargs)


__all__ = [
    "StringEncodedInputsMixin",
    "ATTRIBUTES",
    "METRICS",
    "PROMPT_ATTRIBUTES",
    "UNKNOWN",
    "VOCABULARY",
    "as_attributes",
    "attribute_accuracy",
    "detect_attributes",
    "flatten_scores",
    "load_metric",
    "measure_clip",
    "metric_path",
    "parse_caption",
    "require_text_similarity",
    "score_attributes",
    "score_captions",
    "score_videos",
    "text_similarity",
]
