"""Detectors of the shapes world (`univigu_hf.shapes`): read the attributes of a clip back from its pixels.

[`detect_attributes`] reads the seven attributes of a clip (background, color, size, shape, direction, speed, start
position), robustly enough for noisy or compressed frames; [`measure_clip`] returns the measurements behind them. The
scores built on them, and the caption parser, are in `scoring.py` (`univigu_hf.shapes.scoring`, which re-exports
these names).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .world import BACKGROUND_VALUES, DIRECTION_VECTORS, GRID, HALF_SIZES, PALETTE, START_POSITIONS, TRAVEL


ATTRIBUTES = ("shape", "color", "size", "direction", "background", "speed", "start")
UNKNOWN = "unknown"

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


__all__ = ["ATTRIBUTES", "UNKNOWN", "detect_attributes", "measure_clip"]
