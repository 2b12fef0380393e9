"""Training Uni-ViGU: the unified-flow loss, a collator, dataset preparation and a `transformers.Trainer` subclass."""

from .collator import UniViGUDataCollator
from .data import count_truncated, prepare_dataset
from .dataset_loading import STAGES, load_video_dataset
from .loss import (
    GENERATION,
    JOINT,
    UNDERSTANDING,
    UniFlowLossOutput,
    UniFlowTrainingConfig,
    sample_tasks,
    sample_video_sigmas,
    step_generator,
    unified_flow_loss,
)
from .trainer import TRAINABLE_CHOICES, UniViGUTrainer, set_trainable


__all__ = [
    "GENERATION",
    "JOINT",
    "STAGES",
    "TRAINABLE_CHOICES",
    "UNDERSTANDING",
    "UniFlowLossOutput",
    "UniFlowTrainingConfig",
    "UniViGUDataCollator",
    "UniViGUTrainer",
    "count_truncated",
    "load_video_dataset",
    "prepare_dataset",
    "sample_tasks",
    "sample_video_sigmas",
    "set_trainable",
    "step_generator",
    "unified_flow_loss",
]
