"""`caption_text_similarity`: BLEU (sacrebleu) and ROUGE-L (rouge-score) of generated captions."""

import datasets
import evaluate

from univigu_hf.shapes.scoring import require_text_similarity, text_similarity


_DESCRIPTION = """
Text similarity of generated captions to reference captions: corpus BLEU from `sacrebleu.corpus_bleu` (0..100, 13a
tokenization, one reference per caption) and ROUGE-L F1 from `rouge_score.rouge_scorer.RougeScorer(["rougeL"],
use_stemmer=True)` averaged over the pairs (0..1). Needs the `eval` extra of `univigu_hf`
(`pip install 'univigu_hf[eval]'`); works offline (no NLTK data needed).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): generated captions.
    references (`list[str]`): one reference caption per prediction.

Returns:
    `bleu` (`float`, 0..100) and `rougeL` (`float`, 0..1).

Examples:
    >>> metric = evaluate.load(univigu_hf.shapes.scoring.metric_path("caption_text_similarity"))
    >>> metric.compute(predictions=["a small red circle moving left"], references=["a small red circle moving left"])
    {'bleu': 100.00000000000004, 'rougeL': 1.0}
"""

_CITATION = """
@inproceedings{papineni-etal-2002-bleu,
    title = "{B}leu: a Method for Automatic Evaluation of Machine Translation",
    author = "Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing",
    booktitle = "Proceedings of the 40th Annual Meeting of the Association for Computational Linguistics",
    year = "2002",
    pages = "311--318",
}
@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
    year = "2018",
    pages = "186--191",
}
@inproceedings{lin-2004-rouge,
    title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
    author = "Lin, Chin-Yew",
    booktitle = "Text Summarization Branches Out",
    year = "2004",
    pages = "74--81",
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CaptionTextSimilarity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            codebase_urls=[
                "https://github.com/mjpost/sacrebleu",
                "https://github.com/google-research/google-research",
            ],
            reference_urls=["https://aclanthology.org/W18-6319", "https://aclanthology.org/W04-1013"],
        )

    def _download_and_prepare(self, dl_manager):
        require_text_similarity()  # fail at load time, naming the `eval` extra

    def _compute(self, predictions, references):
        return text_similarity(predictions, references)
