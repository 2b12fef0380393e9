"""`UniViGUTrainer`: `transformers.Trainer` with the unified-flow loss."""

import copy
import os
import shutil

import torch
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints
from transformers.utils import logging

from ..models.wan_growth import is_text_parameter
from ..schedulers import UniFlowScheduler
from ..utils.saving import commit_directory, replace_directory
from .loss import GENERATION, JOINT, UNDERSTANDING, UniFlowTrainingConfig, step_generator, unified_flow_loss


logger = logging.get_logger(__name__)

CHECKPOINT_STAGING_PREFIX = "tmp-"
"""A checkpoint is written to `<output_dir>/tmp-checkpoint-N/checkpoint-N` and renamed to `<output_dir>/checkpoint-N`
once complete; `tmp-*` folders are not checkpoints for `get_last_checkpoint` or the checkpoint rotation."""

TRAINABLE_CHOICES = ("all", "text", "video")


def set_trainable(model: torch.nn.Module, trainable: str) -> int:
    """
    Chooses what trains: `"all"` (every parameter), `"text"` (only the text branch added on top of Wan: text FFN
    experts, caption embedding and head, text timestep embedder and output table; the video path, including the
    shared attention, stays frozen bit for bit) or `"video"` (only Wan's parameters, the complement of `"text"`:
    training the Wan base with `UniFlowTrainingConfig(video_only=True)`).

    Args:
        model: a [`UniViGUModel`].
        trainable (`str`): `"all"`, `"text"` or `"video"`.

    Returns:
        `int`: the number of trainable parameters.
    """
    if trainable not in TRAINABLE_CHOICES:
        raise ValueError(f"trainable must be one of {TRAINABLE_CHOICES}, got {trainable!r}")
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(trainable == "all" or (trainable == "text") == is_text_parameter(name))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class UniViGUTrainer(Trainer):
    r"""
    A `transformers.Trainer` that trains a [`UniViGUModel`] (plain, PEFT-wrapped, DDP/FSDP/DeepSpeed through
    accelerate) with the unified-flow loss, and logs the video and text losses separately (`loss_video`,
    `loss_text`, plus the observed task mix and condition-dropout rate) next to Trainer's `loss`.

    The noise of every micro-batch comes from [`step_generator`]`(config.seed, global_step, micro_batch, process)`,
    so `--resume_from_checkpoint` continues exactly: the randomness does not depend on what ran before.

    Args:
        model: the [`UniViGUModel`] (or a `PeftModel` around it).
        args (`TrainingArguments`): as for `Trainer`. Dataset columns are never removed (the loss needs
            `prompt_embeds`/`prompt_ids`, which are not forward arguments): the trainer works on a copy of `args`
            with `remove_unused_columns=False`, the setting transformers documents for custom collators.
        flow_scheduler ([`UniFlowScheduler`]): text noise and time maps (the pipeline's scheduler).
        uniflow_config ([`UniFlowTrainingConfig`], *optional*): the objective's settings.
        null_condition (`torch.Tensor`, *optional*): the empty-prompt embedding for condition dropout.
        **kwargs: the other `Trainer` arguments (`train_dataset`, `data_collator`, `callbacks`, ...).
    """

    def __init__(
        self,
        model=None,
        args=None,
        *,
        flow_scheduler: UniFlowScheduler,
        uniflow_config: UniFlowTrainingConfig | None = None,
        null_condition: torch.Tensor | None = None,
        **kwargs,
    ):
        if not isinstance(flow_scheduler, UniFlowScheduler):
            raise TypeError(f"flow_scheduler must be a UniFlowScheduler, got {type(flow_scheduler).__name__}")
        if args is not None and args.remove_unused_columns:
            args = copy.copy(args)
            args.remove_unused_columns = False
        super().__init__(model=model, args=args, **kwargs)
        self.args.remove_unused_columns = False  # also when Trainer made the default arguments
        self.flow_scheduler = flow_scheduler
        self.uniflow_config = uniflow_config or UniFlowTrainingConfig(seed=self.args.seed)
        self.null_condition = None if null_condition is None else null_condition.detach()
        self._micro_batch = (None, 0)
        self._reset_components()

    # ----------------------------------------------------------------------------------------------------------------
    # Atomic checkpoints
    # ----------------------------------------------------------------------------------------------------------------
    def _get_output_dir(self, trial) -> str:
        staging = getattr(self, "_checkpoint_staging", None)  # set while Trainer writes a checkpoint
        return staging if staging is not None else super()._get_output_dir(trial)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        if getattr(self, "_checkpoint_staging", None) is not None:
            return  # pushed by `_save_checkpoint` once the checkpoint is in place
        super()._push_from_checkpoint(checkpoint_folder)

    def _save_checkpoint(self, model, trial) -> None:
        """
        Trainer's checkpoint, made atomic: every process writes into `<output_dir>/tmp-checkpoint-N/checkpoint-N`,
        which the saving process(es) rename to `<output_dir>/checkpoint-N` once it is complete. A run killed while
        saving leaves the previous checkpoints intact and no `checkpoint-N` folder, so `resume_from_checkpoint`
        (`get_last_checkpoint`) never picks a half-written one.
        """
        run_dir = self._get_output_dir(trial)
        folder = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        final = os.path.join(run_dir, folder)
        staging_root = os.path.join(run_dir, CHECKPOINT_STAGING_PREFIX + folder)
        staged = os.path.join(staging_root, folder)
        if self.args.should_save:
            shutil.rmtree(staging_root, ignore_errors=True)  # left by a killed run
        self.accelerator.wait_for_everyone()
        self._checkpoint_staging = staging_root
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._checkpoint_staging = None
        best = self.state.best_model_checkpoint
        if best is not None and os.path.abspath(best) == os.path.abspath(staged):
            self.state.best_model_checkpoint = final
            if self.args.should_save:  # the saved state must name the final folder
                self.state.save_to_json(os.path.join(staged, "trainer_state.json"))
        self.accelerator.wait_for_everyone()
        if self.args.should_save and os.path.isdir(staged):
            replace_directory(staged, final)
            shutil.rmtree(staging_root, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        if os.path.isdir(staged):  # a node whose files the saving process cannot see (no shared filesystem)
            commit_directory(staged, final, markers=())
            shutil.rmtree(staging_root, ignore_errors=True)
        if self.args.push_to_hub:
            self._push_from_checkpoint(final)
        if self.args.should_save:
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )

    def _reset_components(self):
        self._loss_sums = None  # video, text
        self._count_sums = torch.zeros(4, dtype=torch.float64)  # joint, understanding, generation, condition dropped
        self._component_steps = 0
        self._component_samples = 0

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        inputs = dict(inputs)
        inputs.pop("num_truncated", None)
        step, index = self._micro_batch
        index = index + 1 if step == self.state.global_step else 0
        self._micro_batch = (self.state.global_step, index)
        generator = step_generator(self.uniflow_config.seed, self.state.global_step, index, self.args.process_index)
        output = unified_flow_loss(
            model, inputs, self.flow_scheduler, self.uniflow_config, generator, null_condition=self.null_condition
        )
        if model.training:
            # The losses are summed on their device, without a host sync per step (`log` reads them every
            # logging_steps); the task counts come from the CPU generator.
            losses = torch.stack([output.video_loss.detach().float(), output.text_loss.detach().float()])
            tasks = output.tasks
            counts = torch.stack(
                [
                    (tasks == JOINT).sum(),
                    (tasks == UNDERSTANDING).sum(),
                    (tasks == GENERATION).sum(),
                    output.condition_dropped.sum(),
                ]
            ).double()
            self._loss_sums = losses if self._loss_sums is None else self._loss_sums + losses
            self._count_sums += counts
            self._component_steps += 1
            self._component_samples += tasks.numel()
        return (output.loss, output) if return_outputs else output.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._component_steps:
            totals = torch.cat(
                [self._loss_sums.to(self.args.device, torch.float32), self._count_sums.float().to(self.args.device)]
            )
            counts = torch.tensor([self._component_steps, self._component_samples], device=self.args.device)
            if self.args.world_size > 1:
                totals = self.accelerator.reduce(totals, reduction="sum")
                counts = self.accelerator.reduce(counts, reduction="sum")
            steps, samples = max(int(counts[0]), 1), max(int(counts[1]), 1)
            logs["loss_video"] = round(float(totals[0]) / steps, 6)
            logs["loss_text"] = round(float(totals[1]) / steps, 6)
            logs["task_joint"] = round(float(totals[2]) / samples, 4)
            logs["task_understanding"] = round(float(totals[3]) / samples, 4)
            logs["task_generation"] = round(float(totals[4]) / samples, 4)
            logs["condition_dropped"] = round(float(totals[5]) / samples, 4)
            self._reset_components()
        super().log(logs, start_time)
