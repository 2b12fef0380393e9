"""The Hub: model cards generated from a checkpoint and its training record, and publishing with one call."""

from .model_card import (
    TRAINING_SUMMARY_NAME,
    card_metadata,
    create_model_card,
    eval_results_from_metrics,
    lora_settings,
    training_stages,
)
from .push import HubPushError, check_can_push, push_to_hub


__all__ = [
    "TRAINING_SUMMARY_NAME",
    "HubPushError",
    "check_can_push",
    "card_metadata",
    "create_model_card",
    "eval_results_from_metrics",
    "lora_settings",
    "push_to_hub",
    "training_stages",
]
