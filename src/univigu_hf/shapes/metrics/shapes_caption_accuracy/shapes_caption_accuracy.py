"""`shapes_caption_accuracy`: per-attribute accuracy of captions of shapes-world clips (`univigu_hf.shapes`)."""

import datasets
import evaluate

from univigu_hf.shapes.scoring import ATTRIBUTES, StringEncodedInputsMixin, flatten_scores, score_captions


_DESCRIPTION = """
Scores video-to-text on the shapes world of `univigu_hf`: each caption is read back with
`univigu_hf.shapes.scoring.parse_caption` (the world's fixed vocabulary: shape, color, size, direction, background,
speed, start position) and compared with the clip's true attributes. An attribute that a caption does not state, or
states ambiguously, counts as wrong; an attribute that a reference does not state (e.g. the background of a prompt)
is not scored for that pair.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): generated captions.
    references (`list[str | dict]`): one per caption: a ground-truth caption or prompt (only the attributes it states
        are scored), a JSON object string of attributes, or an attribute dict (encoded as JSON when added).
    attributes (`list[str]`, *optional*): which attributes to score (default: all seven).

Returns:
    `{attribute}_accuracy` (`float`) for each scored attribute, `mean_accuracy` (`float`, over the scored
    attributes) and `num_samples` (`int`).

Examples:
    >>> metric = evaluate.load(univigu_hf.shapes.scoring.metric_path("shapes_caption_accuracy"))
    >>> metric.compute(predictions=["a small red circle moving left"], references=["a small red square moving left"])
    {'shape_accuracy': 0.0, 'color_accuracy': 1.0, 'size_accuracy': 1.0, 'direction_accuracy': 1.0, 'mean_accuracy': 0.75, 'num_samples': 1}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ShapesCaptionAccuracy(StringEncodedInputsMixin, evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, attributes=ATTRIBUTES):
        return flatten_scores(score_captions(predictions, references, attributes))
