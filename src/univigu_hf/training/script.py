"""The training entry point behind `examples/train_base.py`, `examples/train_recall.py` and `examples/train_refine.py`.

Arguments are parsed with TRL's `TrlParser((UniViGUScriptArguments, TrainingArguments, ModelConfig))`: a YAML file
with `--config`, overridden by command-line flags. Works under `accelerate launch` (DDP, FSDP, DeepSpeed).
"""

import json
import os
import shutil
from dataclasses import dataclass, field

import torch
from diffusers import DiffusionPipeline
from transformers import TrainingArguments
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging
from trl import ModelConfig, ScriptArguments, TrlParser, get_peft_config

from ..hub import TRAINING_SUMMARY_NAME, HubPushError, check_can_push, lora_settings, push_to_hub, training_stages
from ..pipelines import UniViGUPipeline
from ..utils.saving import STAGING_PREFIX, commit_directory, write_text_atomic
from ..utils.torch_utils import diffusers_dtype_kwargs
from .collator import UniViGUDataCollator
from .data import prepare_dataset
from .dataset_loading import load_video_dataset
from .loss import UniFlowTrainingConfig
from .trainer import TRAINABLE_CHOICES, UniViGUTrainer, set_trainable


logger = logging.get_logger(__name__)

DEFAULT_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
SCRIPT_STAGES = ("base", "recall", "refine")
"""`"base"`: Wan text-to-video training (saves a `WanPipeline`); `"recall"`/`"refine"`: the paper's two stages."""


@dataclass
class UniViGUScriptArguments(ScriptArguments):
    """Arguments of the Uni-ViGU training scripts (besides `TrainingArguments` and TRL's `ModelConfig`)."""

    init_from: str | None = field(
        default=None,
        metadata={
            "help": "A diffusers Wan2.1 text-to-video pipeline (folder or repo id; grown with UniViGUPipeline.from_wan) "
            "or a UniViGU pipeline folder/repo id. Falls back to --model_name_or_path."
        },
    )
    trainable: str = field(
        default="all",
        metadata={"help": "What trains without --use_peft: 'all' or 'text' (text branch only; video path frozen)."},
    )
    video_column: str = field(default="file_name", metadata={"help": "Column with the video paths."})
    prompt_column: str = field(default="prompt", metadata={"help": "Column with the generation prompts."})
    caption_column: str = field(default="caption", metadata={"help": "Column with the detailed captions."})
    text_ffn_dim: int | None = field(
        default=None, metadata={"help": "Text FFN width when growing from Wan (None: full-size copy)."}
    )
    max_text_length: int | None = field(
        default=None, metadata={"help": "Caption length; None: the model's max_text_length."}
    )
    video_attends_text: bool | None = field(
        default=None,
        metadata={
            "help": "Whether video tokens attend to caption tokens (official: true). false: the video never sees the "
            "caption, so captioning can reuse the video keys/values exactly (caption(video_cache='exact')). None: "
            "keep the model's setting (true when growing from Wan)."
        },
    )
    height: int | None = field(default=None, metadata={"help": "Video height (None: the pipeline default)."})
    width: int | None = field(default=None, metadata={"help": "Video width (None: the pipeline default)."})
    num_frames: int | None = field(default=None, metadata={"help": "Frames per clip, 4k+1 (None: pipeline default)."})
    max_sequence_length: int = field(default=512, metadata={"help": "T5 prompt length (Wan: 512)."})
    prepared_data_dir: str | None = field(
        default=None, metadata={"help": "Cache of precomputed latents/embeddings (None: <output_dir>/prepared_data)."}
    )
    preprocessing_batch_size: int = field(default=4, metadata={"help": "Videos per VAE batch when preparing."})
    text_loss_weight: float = field(default=1.0, metadata={"help": "lambda in MSE + lambda * CE."})
    joint_prob: float = field(default=1 / 3, metadata={"help": "Probability of the joint task."})
    understanding_prob: float = field(default=1 / 3, metadata={"help": "Probability of the understanding task."})
    generation_prob: float = field(default=1 / 3, metadata={"help": "Probability of the generation task."})
    condition_dropout_prob: float = field(default=0.1, metadata={"help": "Prompt-condition dropout probability."})
    condition_dropout_value: str = field(default="empty", metadata={"help": "'empty' prompt embedding or 'zeros'."})
    understanding_condition: str = field(default="zeros", metadata={"help": "'zeros' or 'prompt'."})
    video_time_sampling: str = field(
        default="shifted_uniform", metadata={"help": "'uniform', 'shifted_uniform' or 'logit_normal'."}
    )
    video_time_shift: float | None = field(default=None, metadata={"help": "Training shift (None: scheduler shift)."})
    video_foreground_weight: float = field(
        default=0.0,
        metadata={"help": "Extra loss weight of latent positions that stand out from their frame (0: off)."},
    )
    hub_metrics_file: str | None = field(
        default=None,
        metadata={
            "help": "With --push_to_hub: an evaluation metrics JSON file for the model card's results and model-index "
            "(layouts: univigu_hf.hub.eval_results_from_metrics)."
        },
    )

    def __post_init__(self):
        # Checked when the arguments are parsed, before any model or data is loaded.
        if self.trainable not in TRAINABLE_CHOICES:
            raise ValueError(f"--trainable must be one of {TRAINABLE_CHOICES}, got {self.trainable!r}")
        if self.hub_metrics_file is not None and not os.path.isfile(self.hub_metrics_file):
            raise FileNotFoundError(f"--hub_metrics_file not found: {self.hub_metrics_file!r}")
        for name in ("text_ffn_dim", "max_text_length", "height", "width", "num_frames"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be a positive integer (or unset for the default), got {value}")
        for name in ("max_sequence_length", "preprocessing_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        try:
            self.uniflow_config(seed=0)
        except ValueError as error:  # the objective's own checks, named as flags
            raise ValueError(f"--{error}") from None

    def uniflow_config(self, seed: int, video_only: bool = False) -> UniFlowTrainingConfig:
        return UniFlowTrainingConfig(
            video_only=video_only,
            text_loss_weight=self.text_loss_weight,
            joint_prob=self.joint_prob,
            understanding_prob=self.understanding_prob,
            generation_prob=self.generation_prob,
            condition_dropout_prob=self.condition_dropout_prob,
            condition_dropout_value=self.condition_dropout_value,
            understanding_condition=self.understanding_condition,
            video_time_sampling=self.video_time_sampling,
            video_time_shift=self.video_time_shift,
            video_foreground_weight=self.video_foreground_weight,
            seed=seed,
        )


def parse_args(argv: list[str] | None = None):
    """Parses `--config file.yaml` plus command-line overrides into the three argument dataclasses."""
    parser = TrlParser((UniViGUScriptArguments, TrainingArguments, ModelConfig))
    return parser.parse_args_and_config(argv)


def load_pipeline_for_training(
    init_from: str,
    *,
    text_ffn_dim: int | None = None,
    max_text_length: int | None = None,
    dtype=None,
    video_attends_text: bool | None = None,
) -> UniViGUPipeline:
    """
    Loads a [`UniViGUPipeline`] to train: a UniViGU pipeline as is, or a diffusers Wan pipeline grown with
    [`UniViGUPipeline.from_wan`] (fresh text branch).

    Args:
        init_from (`str`): a UniViGU or Wan pipeline folder / repo id.
        text_ffn_dim (`int`, *optional*): text FFN width when growing from Wan.
        max_text_length (`int`, *optional*): caption length when growing from Wan.
        dtype (`torch.dtype`, *optional*): dtype to load in.
        video_attends_text (`bool`, *optional*): the transformer's `video_attends_text`; `None` keeps the loaded
            model's (Wan: `True`, the official joint attention). Switching a trained model changes its video path,
            which the training then adapts to.

    Returns:
        [`UniViGUPipeline`]
    """
    try:
        class_name = DiffusionPipeline.load_config(init_from).get("_class_name")
    except (OSError, ValueError) as error:
        raise ValueError(
            f"--init_from={init_from!r} is not a diffusers pipeline folder or repo id with a model_index.json ({error})"
        ) from error
    if class_name == "UniViGUPipeline":
        pipeline = UniViGUPipeline.from_pretrained(init_from, **diffusers_dtype_kwargs(dtype))
        if text_ffn_dim is not None:
            logger.warning("--text_ffn_dim is ignored: --init_from is already a UniViGU pipeline")
        config = pipeline.transformer.config
        if video_attends_text is not None and video_attends_text != config.video_attends_text:
            logger.warning(
                f"--video_attends_text={video_attends_text} changes the attention of a model trained with "
                f"video_attends_text={config.video_attends_text}: its video path changes and training adapts to it"
            )
            config.video_attends_text = video_attends_text
        return pipeline
    if class_name and class_name.startswith("Wan"):
        kwargs = {} if max_text_length is None else {"max_text_length": max_text_length}
        if video_attends_text is not None:
            kwargs["video_attends_text"] = video_attends_text
        return UniViGUPipeline.from_wan(init_from, text_ffn_dim=text_ffn_dim, torch_dtype=dtype, **kwargs)
    raise ValueError(f"--init_from={init_from!r} holds a {class_name}; expected a WanPipeline or a UniViGUPipeline")


def _peft_config(model_args: ModelConfig):
    if model_args.lora_task_type is not None:
        # TRL's default "CAUSAL_LM" makes get_peft_model wrap the model as a causal LM and crash on our forward.
        logger.info(f"Ignoring lora_task_type={model_args.lora_task_type!r}: UniViGU adapters use no task type")
        model_args.lora_task_type = None
    if model_args.lora_target_modules is None:
        model_args.lora_target_modules = DEFAULT_LORA_TARGETS
    config = get_peft_config(model_args)
    config.task_type = None
    return config


def run(stage: str, argv: list[str] | None = None, callbacks: list | None = None) -> dict:
    """
    Runs one training stage: Knowledge Recall (`"recall"`: the text target is the prompt), Capability Refinement
    (`"refine"`: the detailed caption), or `"base"`: plain Wan text-to-video training of the video path
    (`UniFlowTrainingConfig(video_only=True)`, `trainable="video"`: the forward is exactly `WanTransformer3DModel`'s)
    whose output directory is a diffusers `WanPipeline` (the transformer exported with [`UniViGUModel.to_wan`]), the
    base the other two stages grow from.

    Args:
        stage (`str`): `"base"`, `"recall"` or `"refine"`.
        argv (`list[str]`, *optional*): command-line arguments (default: `sys.argv[1:]`).
        callbacks (`list[transformers.TrainerCallback]`, *optional*): passed to the `Trainer` (e.g. evaluation or
            logging at chosen steps); their `on_step_end` gets the model being trained as `model`.

    Returns:
        `dict`: the final training metrics (`train_loss`, the last logged `loss_video`/`loss_text`, ...).
    """
    if stage not in SCRIPT_STAGES:
        raise ValueError(f"stage must be one of {SCRIPT_STAGES}, got {stage!r}")
    script_args, training_args, model_args = parse_args(argv)
    # The finished output folder is published once, with its model card, by univigu_hf.hub.push_to_hub (Trainer's
    # own pushes would upload checkpoints without a card): Trainer never sees push_to_hub.
    push, training_args.push_to_hub = training_args.push_to_hub, False
    repo_id = training_args.hub_model_id or os.path.basename(os.path.normpath(training_args.output_dir))
    if push:
        check_can_push(repo_id, argument="--hub_model_id")  # fail before training, not after it
    data_stage = "recall" if stage == "base" else stage  # the base stage reads prompts only
    if stage == "base" and script_args.trainable != "video":
        logger.info(f"stage 'base' trains the video path: ignoring --trainable={script_args.trainable!r}")
        script_args.trainable = "video"
    init_from = script_args.init_from or model_args.model_name_or_path
    if not init_from:
        raise ValueError("--init_from is required (a Wan2.1 diffusers pipeline or a UniViGU pipeline)")
    if not script_args.dataset_name:
        raise ValueError("--dataset_name is required (a datasets name or a folder of videos with metadata.jsonl)")
    dtype = None if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    pipeline = load_pipeline_for_training(
        init_from,
        text_ffn_dim=script_args.text_ffn_dim,
        max_text_length=script_args.max_text_length,
        dtype=dtype,
        video_attends_text=script_args.video_attends_text,
    )
    max_text_length = script_args.max_text_length or pipeline.transformer.config.max_text_length
    # The trained pipeline generates at the size it was trained at.
    sizes = {"default_height": script_args.height, "default_width": script_args.width}
    sizes["default_num_frames"] = script_args.num_frames
    pipeline.register_to_config(**{k: v for k, v in sizes.items() if v is not None})

    prepared_dir = script_args.prepared_data_dir or os.path.join(training_args.output_dir, "prepared_data")
    with training_args.main_process_first(desc="preparing the dataset"):
        dataset, base_dir = load_video_dataset(
            script_args.dataset_name,
            split=script_args.dataset_train_split,
            dataset_config=script_args.dataset_config,
            video_column=script_args.video_column,
            prompt_column=script_args.prompt_column,
            caption_column=script_args.caption_column,
            stage=data_stage,
        )
        prepared = prepare_dataset(
            pipeline,
            dataset,
            stage=data_stage,
            base_dir=base_dir,
            video_column=script_args.video_column,
            prompt_column=script_args.prompt_column,
            caption_column=script_args.caption_column,
            max_text_length=max_text_length,
            height=script_args.height,
            width=script_args.width,
            num_frames=script_args.num_frames,
            max_sequence_length=script_args.max_sequence_length,
            cache_dir=prepared_dir,
            batch_size=script_args.preprocessing_batch_size,
        )
    with torch.no_grad():
        null_condition, _ = pipeline.encode_prompt(
            prompt=[""], do_classifier_free_guidance=False, max_sequence_length=script_args.max_sequence_length
        )

    model = pipeline.transformer
    if model_args.use_peft:
        from peft import get_peft_model

        for parameter in model.parameters():
            parameter.requires_grad_(False)
        model = get_peft_model(model, _peft_config(model_args))
    else:
        trainable = set_trainable(model, script_args.trainable)
        logger.info(f"Training {trainable:,} parameters ({script_args.trainable})")

    collator = UniViGUDataCollator(
        max_text_length=max_text_length,
        pad_token_id=pipeline.transformer.config.pad_token_id or 0,
        max_sequence_length=script_args.max_sequence_length,
    )
    trainer = UniViGUTrainer(
        model=model,
        args=training_args,
        train_dataset=prepared,
        data_collator=collator,
        flow_scheduler=pipeline.scheduler,
        uniflow_config=script_args.uniflow_config(training_args.seed, video_only=stage == "base"),
        null_condition=null_condition,
        callbacks=callbacks,
    )
    resume = training_args.resume_from_checkpoint
    if resume in ("true", "True", "last"):
        resume = get_last_checkpoint(training_args.output_dir)
    result = trainer.train(resume_from_checkpoint=resume)
    save_trained_pipeline(
        trainer, pipeline, training_args.output_dir, use_peft=model_args.use_peft, as_wan=stage == "base"
    )

    metrics = dict(result.metrics)
    for entry in reversed(trainer.state.log_history):
        if "loss_text" in entry:
            metrics.update({k: entry[k] for k in ("loss_video", "loss_text") if k in entry})
            break
    if trainer.is_world_process_zero():
        record = {"stage": stage, "init_from": init_from, "init_from_is_local": os.path.exists(init_from)}
        record.update(metrics=metrics, trainable=script_args.trainable)
        record["use_peft"] = bool(model_args.use_peft)
        record["lora"] = (
            lora_settings(model.peft_config[model.active_adapter].to_dict()) if model_args.use_peft else None
        )
        record["dataset"] = script_args.dataset_name
        record["dataset_is_local"] = os.path.exists(script_args.dataset_name)
        record["dataset_config"] = script_args.dataset_config
        record["dataset_split"] = script_args.dataset_train_split
        record["num_examples"] = len(prepared)
        record["global_step"] = trainer.state.global_step
        record["world_size"] = training_args.world_size
        record["effective_batch_size"] = (
            training_args.per_device_train_batch_size
            * training_args.gradient_accumulation_steps
            * training_args.world_size
        )
        record["max_text_length"] = max_text_length
        record["video_size"] = {k.replace("default_", ""): pipeline.config[k] for k in sizes}
        record["training_args"] = json.loads(training_args.to_json_string())
        record["training_args"]["push_to_hub"] = push
        # Every stage that led here, oldest first (from the training_summary.json of the folder it started from).
        summary = dict(record, stages=[*_previous_stages(init_from), record])
        write_text_atomic(os.path.join(training_args.output_dir, TRAINING_SUMMARY_NAME), json.dumps(summary, indent=2))
        if push:
            try:
                commit = push_to_hub(
                    training_args.output_dir,
                    repo_id,
                    private=bool(training_args.hub_private_repo),
                    token=training_args.hub_token,
                    revision=training_args.hub_revision,
                    metrics=script_args.hub_metrics_file,
                    commit_message=f"Uni-ViGU {stage} stage: {trainer.state.global_step} steps",
                )
            except HubPushError as error:
                raise HubPushError(
                    f"{error} The trained pipeline is saved in {training_args.output_dir!r}; publish it later with "
                    f"`univigu push {training_args.output_dir} {repo_id}`."
                ) from error
            logger.warning(f"Pushed {training_args.output_dir} with its model card: {commit.commit_url}")
    return metrics


def _previous_stages(init_from: str) -> list[dict]:
    """The stage records of the `training_summary.json` in the folder this run started from (none for a repo id)."""
    path = os.path.join(init_from, TRAINING_SUMMARY_NAME)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        stages = training_stages(json.load(handle))
    return [{k: v for k, v in stage.items() if k != "stages"} for stage in stages]


def save_trained_pipeline(
    trainer: UniViGUTrainer, pipeline: UniViGUPipeline, output_dir: str, use_peft: bool, as_wan: bool = False
):
    """
    Writes the final pipeline directory, loadable with `UniViGUPipeline.from_pretrained(output_dir)`. The transformer
    goes through `trainer.save_model` (consolidated under FSDP/DeepSpeed); LoRA runs also keep the adapter alone in
    `output_dir/adapter` and save the merged transformer. With `as_wan=True` the directory is a diffusers
    `WanPipeline` instead: the saved transformer is reloaded and exported with [`UniViGUModel.to_wan`], and the
    scheduler is a `FlowMatchEulerDiscreteScheduler` with the same shift (the UniFlow video grid equals it).

    The save is atomic ([`univigu_hf.utils.saving`]): everything is written into a staging folder inside `output_dir`, then
    moved into place with `model_index.json` last, so a run killed while saving leaves the previous pipeline (or
    none) and its checkpoints intact.
    """
    staging = os.path.join(output_dir, STAGING_PREFIX + "final")
    if trainer.is_world_process_zero():
        shutil.rmtree(staging, ignore_errors=True)  # left by a killed run
        os.makedirs(staging)
    trainer.accelerator.wait_for_everyone()
    transformer_dir = os.path.join(staging, "transformer")
    if use_peft:
        trainer.save_model(os.path.join(staging, "adapter"))
        if trainer.is_world_process_zero():
            merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
            merged.save_pretrained(transformer_dir)
    else:
        trainer.save_model(transformer_dir)
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return
    for folder in (transformer_dir, os.path.join(staging, "adapter")):
        # Trainer pickles its arguments next to the weights; the final directory stays safetensors-only.
        path = os.path.join(folder, "training_args.bin")
        if os.path.isfile(path):
            os.remove(path)
    if as_wan:
        _save_as_wan_pipeline(pipeline, transformer_dir, staging)
    else:
        for name, component in pipeline.components.items():
            if name == "transformer" or component is None:
                continue
            component.save_pretrained(os.path.join(staging, name))
        pipeline.save_config(staging)
    commit_directory(staging, output_dir)


def _save_as_wan_pipeline(pipeline: UniViGUPipeline, transformer_dir: str, output_dir: str) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    from ..models import UniViGUModel

    wan_transformer = UniViGUModel.from_pretrained(transformer_dir).to_wan()
    shutil.rmtree(transformer_dir)
    wan = WanPipeline(
        tokenizer=pipeline.tokenizer,
        text_encoder=pipeline.text_encoder,
        vae=pipeline.vae,
        transformer=wan_transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=pipeline.scheduler.config.shift),
    )
    wan.save_pretrained(output_dir)
