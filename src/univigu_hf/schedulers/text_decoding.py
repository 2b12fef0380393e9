"""Decoding strategies of the text stream of [`UniFlowScheduler`] (`text_decoding` in its config).

* `"euler"` (the default): the discrete Euler solver of [`~UniFlowScheduler.step_text`], unchanged.
* `"confidence"`: confidence-ordered parallel decoding. On top of the Euler step, every position that is not yet
  committed and whose predicted probability (the largest softmax probability of its logits) reaches
  `text_confidence_threshold` is committed to its argmax and stays fixed for the rest of the call; the most confident
  uncommitted position of each row is committed in any case, so a caption of `L` tokens needs at most `L` model calls.
  The other positions go on along the flow. The state is the boolean mask `text_committed` that `step_text` returns
  and takes back; a loop ends early once it is all `True`.
"""

import math

import torch

from ..utils.checks import is_real


TEXT_DECODINGS = ("euler", "confidence")


def check_text_decoding(text_decoding, text_confidence_threshold) -> None:
    """Validates the decoding arguments of [`UniFlowScheduler`] (at construction and in `register_to_config`)."""
    if not isinstance(text_decoding, str) or text_decoding not in TEXT_DECODINGS:
        raise ValueError(f"text_decoding must be one of {TEXT_DECODINGS}, got {text_decoding!r}")
    threshold = text_confidence_threshold
    if not is_real(threshold) or math.isnan(threshold) or not 0 < threshold <= 1:
        raise ValueError(
            f"text_confidence_threshold must be a float in (0, 1] (the probability at which a text position is "
            f"committed), got {threshold!r}"
        )


def check_text_committed(text_committed, text_ids: torch.Tensor) -> torch.Tensor:
    """Returns the committed mask of a `step_text` call on the device of `text_ids` (all `False` when `None`)."""
    if text_committed is None:
        return torch.zeros(text_ids.shape, dtype=torch.bool, device=text_ids.device)
    if not isinstance(text_committed, torch.Tensor) or text_committed.dtype != torch.bool:
        raise TypeError(
            "text_committed must be the bool tensor returned by the previous step_text call (or None at the first "
            f"step), got {type(text_committed).__name__}"
            + (f" of dtype {text_committed.dtype}" if isinstance(text_committed, torch.Tensor) else "")
        )
    if tuple(text_committed.shape) != tuple(text_ids.shape):
        raise ValueError(
            f"text_committed must have the shape of text_ids {tuple(text_ids.shape)}, got {tuple(text_committed.shape)}"
        )
    return text_committed.to(text_ids.device)


def confidence_commit(
    text_logits: torch.Tensor,
    text_ids: torch.LongTensor,
    stepped_ids: torch.LongTensor,
    committed: torch.BoolTensor,
    is_final: torch.BoolTensor,
    threshold: float,
) -> tuple[torch.LongTensor, torch.BoolTensor]:
    """
    The confidence commit applied after an Euler step.

    Args:
        text_logits (`torch.Tensor` of shape `(batch_size, sequence_length, vocab_size)`): the model's logits.
        text_ids (`torch.LongTensor`): the tokens before the step (committed positions hold their committed ids).
        stepped_ids (`torch.LongTensor`): the tokens after the Euler step.
        committed (`torch.BoolTensor`): the positions committed before the step.
        is_final (`torch.BoolTensor` of shape `(batch_size,)`): rows whose step reaches text time 1.
        threshold (`float`): the probability in `(0, 1]` at which a position is committed.

    Returns:
        `(ids, committed)`: committed positions keep their ids, newly committed ones take the argmax of the logits,
        the others keep the Euler step's result; the new mask (all `True` on final rows, whose tokens are final).
    """
    logits = text_logits.float()
    top, argmax = logits.max(dim=-1)
    confidence = torch.exp(top - torch.logsumexp(logits, dim=-1)).clamp(max=1.0)
    new = (confidence >= threshold) & ~committed
    if committed.shape[-1] > 0:
        # The most confident open position of every row that has one, whatever its confidence (termination).
        best = confidence.masked_fill(committed, -1.0).argmax(dim=-1, keepdim=True)
        open_rows = ~committed.all(dim=-1, keepdim=True)
        new |= torch.zeros_like(committed).scatter(-1, best, open_rows)
    ids = torch.where(committed, text_ids, stepped_ids)
    ids = torch.where(new, argmax, ids)
    return ids, committed | new | is_final[:, None]
