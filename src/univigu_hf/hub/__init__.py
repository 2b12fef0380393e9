"""The Hub: model cards generated from a checkpoint and its training record, and publishing with one call."""

from .eval_results import eval_results_from_metrics
from .model_card import card_metadata, create_model_card, lora_settings
from .push import HubPushError, check_can_push, push_to_hub
from .training_record import TRAINING_SUMMARY_NAME, training_stages


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
