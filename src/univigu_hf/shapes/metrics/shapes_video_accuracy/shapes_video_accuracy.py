"""`shapes_video_accuracy`: per-attribute accuracy of generated shapes-world videos (`univigu_hf.shapes`)."""

import json

import datasets
import evaluate

from univigu_hf.shapes.scoring import (
    ATTRIBUTES,
    StringEncodedInputsMixin,
    detect_attributes,
    flatten_scores,
    score_attributes,
)


_DESCRIPTION = """
Scores text-to-video on the shapes world of `univigu_hf`: each video is read back with
`univigu_hf.shapes.scoring.detect_attributes` (background, color, size, shape, direction, speed and start position
from the pixels, robust to noise and compression) and compared with the attributes it was generated for. An
attribute that a reference does not state (a prompt states shape, color, size and direction) is not scored.

Videos are read as they are added (`add`, `add_batch` or `compute`), so only their detected attributes (JSON
strings) are stored, never the frames.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list`): videos: float `(F, H, W, 3)` arrays or nested lists in [0, 1], uint8 arrays, torch
        tensors `(F, 3, H, W)` or lists of PIL images (anything `detect_attributes` accepts); a string is taken as
        already detected attributes (JSON).
    references (`list[str | dict]`): one per video: the prompt (or detailed caption) it was generated from, a JSON
        object string of attributes, or an attribute dict.
    attributes (`list[str]`, *optional*): which attributes to score (default: all seven).

Returns:
    `{attribute}_accuracy` (`float`) for each scored attribute, `mean_accuracy` (`float`, over the scored
    attributes) and `num_samples` (`int`).

Examples:
    >>> from univigu_hf import shapes
    >>> clip = next(shapes.generate_clips(1, seed=0))
    >>> metric = evaluate.load(univigu_hf.shapes.scoring.metric_path("shapes_video_accuracy"))
    >>> metric.compute(predictions=[clip.frames], references=[clip.prompt])["mean_accuracy"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ShapesVideoAccuracy(StringEncodedInputsMixin, evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            # What is stored: the detected attributes of each video and the reference, both as strings.
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _encode_prediction(self, video):
        # Videos are read by the detector as they are added; only the attributes are stored.
        return video if isinstance(video, str) else json.dumps(detect_attributes(video))

    def _compute(self, predictions, references, attributes=ATTRIBUTES):
        detected = [json.loads(prediction) for prediction in predictions]
        return flatten_scores(score_attributes(detected, references, attributes))
