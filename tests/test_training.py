import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import TrainingArguments

from univigu_hf.models.wan_growth import is_text_parameter
from univigu_hf.testing import build_tiny_pipelines
from univigu_hf.training import (
    GENERATION,
    JOINT,
    UNDERSTANDING,
    UniFlowTrainingConfig,
    UniViGUDataCollator,
    UniViGUTrainer,
    sample_tasks,
    set_trainable,
    step_generator,
    unified_flow_loss,
)


PROMPTS = ["a small red square moving left", "a large blue circle moving up", "a green triangle moving down"]
MAX_TEXT = 12


def make_examples(pipe, count=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for index in range(count):
        prompt = PROMPTS[index % len(PROMPTS)]
        with torch.no_grad():
            embeds, _ = pipe.encode_prompt(
                prompt=[prompt], do_classifier_free_guidance=False, device="cpu", max_sequence_length=512
            )
        ids = pipe.tokenizer(prompt).input_ids
        examples.append(
            {
                "video_latents": torch.randn(16, 2, 2, 2, generator=generator).numpy(),
                "prompt_embeds": embeds[0, : len(ids)].numpy(),
                "text_ids": ids,
                "prompt_ids": ids,
            }
        )
    return examples


@pytest.fixture
def pipe():
    return build_tiny_pipelines()[0]


@pytest.fixture
def null_condition(pipe):
    with torch.no_grad():
        return pipe.encode_prompt(
            prompt=[""], do_classifier_free_guidance=False, device="cpu", max_sequence_length=512
        )[0]


def capture_model_inputs(model):
    calls = []

    def hook(module, args, kwargs, output):
        calls.append((kwargs, output))

    return calls, model.register_forward_hook(hook, with_kwargs=True)


# ---------------------------------------------------------------------------------------------------------------------
# Collator
# ---------------------------------------------------------------------------------------------------------------------
def test_collator_pads_truncates_and_counts(pipe):
    examples = make_examples(pipe, 3)
    examples[1]["text_ids"] = list(range(3, 3 + 20))  # longer than MAX_TEXT
    collator = UniViGUDataCollator(max_text_length=MAX_TEXT, pad_token_id=0)
    batch = collator(examples)
    assert batch["text_ids"].shape == (3, MAX_TEXT) and batch["prompt_ids"].shape == (3, MAX_TEXT)
    assert batch["text_ids"][1].tolist() == list(range(3, 3 + MAX_TEXT))
    length = len(examples[0]["text_ids"])
    assert batch["text_ids"][0, length:].eq(0).all() and batch["prompt_attention_mask"][0].sum() == length
    assert batch["prompt_embeds"].shape == (3, 512, 32)
    assert torch.count_nonzero(batch["prompt_embeds"][0, length:]) == 0
    with torch.no_grad():
        full, _ = pipe.encode_prompt(
            prompt=[PROMPTS[0]], do_classifier_free_guidance=False, device="cpu", max_sequence_length=512
        )
    torch.testing.assert_close(batch["prompt_embeds"][0], full[0])  # zero-padding back == Wan's own encoding
    assert int(batch["num_truncated"]) == 1 and collator.total_truncated == 1
    with pytest.raises(ValueError, match="max_text_length must be a positive integer"):
        UniViGUDataCollator(max_text_length=0, pad_token_id=0)
    with pytest.raises(ValueError, match="missing \\['prompt_embeds'"):
        collator([{"video_latents": 0, "text_ids": [1], "prompt_ids": [1]}])


# ---------------------------------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------------------------------
def test_task_mix_follows_the_probabilities():
    config = UniFlowTrainingConfig(joint_prob=0.5, understanding_prob=0.3, generation_prob=0.2)
    tasks = sample_tasks(20000, config, step_generator(0, 1))
    for task, expected in ((JOINT, 0.5), (UNDERSTANDING, 0.3), (GENERATION, 0.2)):
        assert abs((tasks == task).float().mean().item() - expected) < 0.02
    only = sample_tasks(
        100, UniFlowTrainingConfig(joint_prob=0, understanding_prob=1, generation_prob=0), step_generator(0)
    )
    assert only.eq(UNDERSTANDING).all()


def test_each_task_feeds_the_model_what_inference_feeds_it(pipe, null_condition):
    collator = UniViGUDataCollator(max_text_length=MAX_TEXT, pad_token_id=0)
    batch = collator(make_examples(pipe, 48))
    config = UniFlowTrainingConfig(condition_dropout_prob=0.0)
    calls, hook = capture_model_inputs(pipe.transformer)
    try:
        out = unified_flow_loss(pipe.transformer, batch, pipe.scheduler, config, step_generator(0), null_condition)
    finally:
        hook.remove()
    (inputs, _), tasks = calls[0], out.tasks
    assert {JOINT, UNDERSTANDING, GENERATION} <= set(tasks.tolist())
    understanding, generation, joint = tasks == UNDERSTANDING, tasks == GENERATION, tasks == JOINT
    # Captioning: the video is clean (timestep 0, latents untouched) and the condition is the all-zero one.
    assert inputs["video_timestep"][understanding].eq(0).all()
    torch.testing.assert_close(inputs["video_latents"][understanding], batch["video_latents"][understanding])
    assert torch.count_nonzero(inputs["encoder_hidden_states"][understanding]) == 0
    # Text-to-video: the clean prompt tokens with their padding mask at text timestep 0.
    assert inputs["text_timestep"][generation].eq(0).all()
    assert torch.equal(inputs["text_ids"][generation], batch["prompt_ids"][generation])
    assert torch.equal(inputs["text_attention_mask"][generation], batch["prompt_attention_mask"][generation])
    torch.testing.assert_close(inputs["encoder_hidden_states"][generation], batch["prompt_embeds"][generation])
    # Joint: both noisy, text over all positions.
    assert inputs["video_timestep"][joint].gt(0).all() and inputs["text_timestep"][joint].gt(0).any()
    assert inputs["text_attention_mask"][joint].eq(1).all()


def loss_with_model_io(pipe, batch, config, null_condition):
    """The loss of `batch` (step generator 3), the model's inputs and outputs, and the noise it drew (recovered from
    the noisy latents the model saw)."""
    calls, hook = capture_model_inputs(pipe.transformer)
    try:
        out = unified_flow_loss(pipe.transformer, batch, pipe.scheduler, config, step_generator(3), null_condition)
    finally:
        hook.remove()
    inputs, outputs = calls[0]
    sigmas = (inputs["video_timestep"] / 1000).view(-1, 1, 1, 1, 1)
    clean = batch["video_latents"]
    noise = (inputs["video_latents"] - (1 - sigmas) * clean) / sigmas.clamp_min(1e-8)
    return out, outputs, noise


def test_losses_recomputed_independently(pipe, null_condition):
    batch = UniViGUDataCollator(max_text_length=MAX_TEXT, pad_token_id=0)(make_examples(pipe, 12))
    config = UniFlowTrainingConfig(text_loss_weight=0.5)
    out, outputs, noise = loss_with_model_io(pipe, batch, config, null_condition)
    tasks = out.tasks
    clean = batch["video_latents"]
    video_rows = tasks != UNDERSTANDING
    expected_video = (outputs.video_velocity - (noise - clean))[video_rows].pow(2).mean()
    text_rows = tasks != GENERATION
    # All max_text_length positions count, pads included.
    expected_text = F.cross_entropy(
        outputs.text_logits[text_rows].flatten(0, 1), batch["text_ids"][text_rows].flatten()
    )
    torch.testing.assert_close(out.video_loss, expected_video.detach(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.text_loss, expected_text.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        out.loss.detach(), expected_video.detach() + 0.5 * expected_text.detach(), atol=1e-4, rtol=1e-4
    )


def test_foreground_weight_recomputed_independently(pipe, null_condition):
    batch = UniViGUDataCollator(max_text_length=MAX_TEXT, pad_token_id=0)(make_examples(pipe, 12))
    plain = unified_flow_loss(
        pipe.transformer, batch, pipe.scheduler, UniFlowTrainingConfig(), step_generator(3), null_condition
    )
    config = UniFlowTrainingConfig(video_foreground_weight=4.0)
    out, outputs, noise = loss_with_model_io(pipe, batch, config, null_condition)
    clean = batch["video_latents"]
    # Distance from each latent frame's per-channel spatial median, averaged over channels.
    median = clean.flatten(3).median(dim=3).values[..., None, None]
    distance = (clean - median).abs().mean(dim=1, keepdim=True)
    weights = (1 + 4.0 * distance).expand_as(clean)
    error = (outputs.video_velocity - (noise - clean)).pow(2)
    rows = out.tasks != UNDERSTANDING
    expected = ((weights * error).flatten(1).sum(1) / weights.flatten(1).sum(1))[rows].mean()
    torch.testing.assert_close(out.video_loss, expected.detach(), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(out.video_loss, plain.video_loss)
    # Same draws: the text loss does not see the weighting.
    torch.testing.assert_close(out.text_loss, plain.text_loss)


def test_foreground_weight_zero_is_the_plain_mean(pipe, null_condition):
    batch = UniViGUDataCollator(max_text_length=MAX_TEXT, pad_token_id=0)(make_examples(pipe, 8))
    losses = [
        unified_flow_loss(
            pipe.transformer, batch, pipe.scheduler, UniFlowTrainingConfig(**kwargs), step_generator(5), null_condition
        ).loss
        for kwargs in ({}, {"video_foreground_weight": 0.0})
    ]
    assert torch.equal(losses[0], losses[1])


@pytest.mark.parametrize("video_attends_text", [True, False])
def test_video_loss_depends_on_the_caption_only_with_joint_attention(null_condition, video_attends_text):
    pipe = build_tiny_pipelines(video_attends_text=video_attends_text)[0]
    examples = make_examples(pipe, 6)
    other_text = [{**e, "text_ids": e["text_ids"][::-1], "prompt_ids": e["prompt_ids"][::-1]} for e in examples]
    collate = UniViGUDataCollator(max_text_length=MAX_TEXT, pad_token_id=0)
    config = UniFlowTrainingConfig(condition_dropout_prob=0.0)
    a, b = (
        unified_flow_loss(pipe.transformer, collate(batch), pipe.scheduler, config, step_generator(1), null_condition)
        for batch in (examples, other_text)
    )
    assert (a.text_loss - b.text_loss).abs() > 1e-4
    if video_attends_text:
        assert (a.video_loss - b.video_loss).abs() > 1e-6
    else:  # the video never sees the caption, in training as at inference
        torch.testing.assert_close(a.video_loss, b.video_loss, atol=1e-7, rtol=0)


def test_condition_dropout_rate_matches_p(pipe, null_condition):
    collator = UniViGUDataCollator(max_text_length=MAX_TEXT, pad_token_id=0)
    batch = collator(make_examples(pipe, 64))
    config = UniFlowTrainingConfig(condition_dropout_prob=0.3)
    dropped, eligible = 0, 0
    calls, hook = capture_model_inputs(pipe.transformer)
    try:
        for step in range(12):
            out = unified_flow_loss(
                pipe.transformer, batch, pipe.scheduler, config, step_generator(0, step), null_condition
            )
            condition = calls[-1][0]["encoder_hidden_states"]
            can_drop = out.tasks != UNDERSTANDING
            is_null = (condition - null_condition).abs().flatten(1).amax(1) == 0
            assert torch.equal(is_null & can_drop, out.condition_dropped)
            dropped += int(out.condition_dropped.sum())
            eligible += int(can_drop.sum())
    finally:
        hook.remove()
    assert abs(dropped / eligible - 0.3) < 0.06, dropped / eligible


def test_loss_is_deterministic_and_validates(pipe, null_condition):
    batch = UniViGUDataCollator(max_text_length=MAX_TEXT, pad_token_id=0)(make_examples(pipe, 4))
    config = UniFlowTrainingConfig()
    a = unified_flow_loss(pipe.transformer, batch, pipe.scheduler, config, step_generator(1, 2), null_condition)
    b = unified_flow_loss(pipe.transformer, batch, pipe.scheduler, config, step_generator(1, 2), null_condition)
    c = unified_flow_loss(pipe.transformer, batch, pipe.scheduler, config, step_generator(1, 3), null_condition)
    assert torch.equal(a.loss, b.loss) and not torch.equal(a.loss, c.loss)
    with pytest.raises(ValueError, match="null_condition"):
        unified_flow_loss(pipe.transformer, batch, pipe.scheduler, config, step_generator(0))
    with pytest.raises(ValueError, match="batch is missing 'prompt_ids'"):
        unified_flow_loss(
            pipe.transformer,
            {k: v for k, v in batch.items() if k != "prompt_ids"},
            pipe.scheduler,
            config,
            step_generator(0),
            null_condition,
        )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(joint_prob=-1), "joint_prob must be a finite number >= 0, got -1"),
        (dict(joint_prob=0, understanding_prob=0, generation_prob=0), "must not all be 0"),
        (dict(condition_dropout_prob=1.5), "condition_dropout_prob must be a finite number in \\[0, 1\\]"),
        (dict(condition_dropout_value="noise"), "condition_dropout_value must be one of"),
        (dict(video_time_sampling="beta"), "video_time_sampling must be one of"),
        (dict(understanding_condition="x"), "understanding_condition must be one of"),
        (dict(text_loss_weight=-1), "text_loss_weight must be a finite number >= 0"),
        (dict(video_foreground_weight=-0.5), "video_foreground_weight must be a finite number >= 0, got -0.5"),
        (dict(video_foreground_weight=float("nan")), "video_foreground_weight must be a finite number"),
    ],
)
def test_training_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UniFlowTrainingConfig(**kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------------------------------
def train(pipe, null_condition, tmp_path, steps=12, trainable="all", **arg_overrides):
    set_trainable(pipe.transformer, trainable)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=steps,
        learning_rate=1e-3,
        logging_steps=steps // 2,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        **arg_overrides,
    )
    trainer = UniViGUTrainer(
        model=pipe.transformer,
        args=args,
        train_dataset=Dataset.from_list(make_examples(pipe, 8)),
        data_collator=UniViGUDataCollator(max_text_length=MAX_TEXT, pad_token_id=0),
        flow_scheduler=pipe.scheduler,
        null_condition=null_condition,
    )
    trainer.train()
    return trainer


def test_trainer_lowers_both_losses_and_logs_them(pipe, null_condition, tmp_path):
    trainer = train(pipe, null_condition, tmp_path, steps=24)
    logs = [entry for entry in trainer.state.log_history if "loss_text" in entry]
    assert len(logs) == 2
    first, last = logs[0], logs[-1]
    assert last["loss_text"] < first["loss_text"] and last["loss_video"] < first["loss_video"]
    for key in ("task_joint", "task_understanding", "task_generation", "condition_dropped"):
        assert 0 <= last[key] <= 1


def test_video_trainable_is_the_complement_of_text(pipe):
    video = set_trainable(pipe.transformer, "video")
    trainable = {n for n, p in pipe.transformer.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in pipe.transformer.named_parameters() if not is_text_parameter(n)}
    assert video + set_trainable(pipe.transformer, "text") == set_trainable(pipe.transformer, "all")


def test_text_only_training_keeps_the_video_path_bit_identical(pipe, null_condition, tmp_path):
    before = {n: p.detach().clone() for n, p in pipe.transformer.named_parameters()}
    train(pipe, null_condition, tmp_path, steps=4, trainable="text")
    changed = {n for n, p in pipe.transformer.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(is_text_parameter(n) for n in changed)
    for name, parameter in pipe.transformer.named_parameters():
        if not is_text_parameter(name):
            assert torch.equal(parameter, before[name]), name
    with pytest.raises(ValueError, match="trainable must be one of \\('all', 'text', 'video'\\), got 'audio'"):
        set_trainable(pipe.transformer, "audio")


def test_trainer_checks_its_scheduler(pipe):
    with pytest.raises(TypeError, match="flow_scheduler must be a UniFlowScheduler"):
        UniViGUTrainer(model=pipe.transformer, args=TrainingArguments("out", use_cpu=True), flow_scheduler=None)
