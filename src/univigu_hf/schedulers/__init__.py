"""The unified flow scheduler: continuous flow matching for video, discrete flow matching for text."""

from .scheduling_uniflow import UniFlowScheduler, UniFlowSchedulerOutput, shifted_sigmas
from .text_flow import UniFlowTextSchedulerOutput


__all__ = ["UniFlowScheduler", "UniFlowSchedulerOutput", "UniFlowTextSchedulerOutput", "shifted_sigmas"]
