"""Batching prepared examples for the unified-flow loss."""

from dataclasses import dataclass

import numpy as np
import torch
from transformers.utils import logging


logger = logging.get_logger(__name__)


@dataclass
class UniViGUDataCollator:
    r"""
    Stacks prepared examples (see [`prepare_dataset`]) into a batch for [`unified_flow_loss`].

    Text targets (`text_ids`) and the text-stream prompts (`prompt_ids`) are truncated/padded to `max_text_length`
    with `pad_token_id`; the loss covers the pads, so the model learns where a caption ends (official inference
    generates all `max_text_length` positions and decoding stops at the end-of-sequence token). Prompt embeddings,
    stored trimmed to their tokens, are padded with zeros to `max_sequence_length` — exactly Wan's prompt encoding.

    Args:
        max_text_length (`int`): caption length (the model config's `max_text_length`).
        pad_token_id (`int`): the tokenizer's pad id.
        max_sequence_length (`int`, defaults to 512): prompt-embedding length (Wan: 512).

    Returns (from `__call__`):
        `dict` with `video_latents` `(B, C, F, H, W)`, `prompt_embeds` `(B, max_sequence_length, text_dim)`,
        `text_ids`, `prompt_ids`, `prompt_attention_mask` `(B, max_text_length)` (long), and `num_truncated` (how
        many examples of the batch had a longer target than `max_text_length`).
    """

    max_text_length: int
    pad_token_id: int
    max_sequence_length: int = 512

    def __post_init__(self):
        if not isinstance(self.max_text_length, int) or self.max_text_length < 1:
            raise ValueError(f"max_text_length must be a positive integer, got {self.max_text_length!r}")
        if not isinstance(self.pad_token_id, int) or self.pad_token_id < 0:
            raise ValueError(f"pad_token_id must be a non-negative integer, got {self.pad_token_id!r}")
        if not isinstance(self.max_sequence_length, int) or self.max_sequence_length < 1:
            raise ValueError(f"max_sequence_length must be a positive integer, got {self.max_sequence_length!r}")
        self.total_truncated = 0

    def _pad_ids(self, sequences) -> tuple[torch.Tensor, torch.Tensor, int]:
        ids = torch.full((len(sequences), self.max_text_length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), self.max_text_length), dtype=torch.long)
        truncated = 0
        for row, sequence in enumerate(sequences):
            sequence = torch.as_tensor(sequence, dtype=torch.long).reshape(-1)
            truncated += int(sequence.numel() > self.max_text_length)
            sequence = sequence[: self.max_text_length]
            ids[row, : sequence.numel()] = sequence
            mask[row, : sequence.numel()] = 1
        return ids, mask, truncated

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("UniViGUDataCollator got an empty list of examples")
        required = ("video_latents", "prompt_embeds", "text_ids", "prompt_ids")
        missing = [key for key in required if key not in examples[0]]
        if missing:
            raise ValueError(
                f"examples are missing {missing} (got {sorted(examples[0])}); prepare the dataset with prepare_dataset"
            )
        latents = torch.stack([torch.as_tensor(np.asarray(e["video_latents"]), dtype=torch.float32) for e in examples])
        embeds = [torch.as_tensor(np.asarray(e["prompt_embeds"]), dtype=torch.float32) for e in examples]
        text_dim = embeds[0].shape[-1]
        prompt_embeds = torch.zeros(len(examples), self.max_sequence_length, text_dim)
        for row, embed in enumerate(embeds):
            embed = embed.reshape(-1, text_dim)[: self.max_sequence_length]
            prompt_embeds[row, : embed.shape[0]] = embed
        text_ids, _, truncated = self._pad_ids([e["text_ids"] for e in examples])
        prompt_ids, prompt_mask, _ = self._pad_ids([e["prompt_ids"] for e in examples])
        if truncated:
            self.total_truncated += truncated
            logger.warning_once(
                f"Some text targets are longer than max_text_length={self.max_text_length} and were truncated "
                "(the collator's total_truncated counts them)."
            )
        return {
            "video_latents": latents,
            "prompt_embeds": prompt_embeds,
            "text_ids": text_ids,
            "prompt_ids": prompt_ids,
            "prompt_attention_mask": prompt_mask,
            "num_truncated": torch.tensor(truncated),
        }
