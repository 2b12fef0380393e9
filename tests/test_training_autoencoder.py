import datasets
import numpy as np
import pytest
import torch
from transformers import TrainingArguments

from univigu_hf import shapes
from univigu_hf.shapes.autoencoder import AutoencoderTrainer, VideoFramesCollator, edge_l1, latent_statistics
from univigu_hf.testing import build_tiny_vae


def tiny_clips(num_clips=2):
    # 5 frames of 16x16 crops of world clips: enough for the tiny VAE, fast on a CPU.
    clips = [np.round(clip.frames[:5, 8:24, 8:24] * 255).astype(np.uint8) for clip in shapes.generate_clips(num_clips)]
    return datasets.Dataset.from_dict({"video": clips})


def trainer_args(tmp_path, steps=3, **overrides):
    settings = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=steps,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
    )
    settings.update(overrides)
    return TrainingArguments(**settings)


def test_collator_maps_uint8_frames_to_the_vae_input():
    frames = np.zeros((5, 8, 8, 3), dtype=np.uint8)
    frames[0, 0, 0] = 255
    batch = VideoFramesCollator()([{"video": frames}, {"video": frames}])["video"]
    assert batch.shape == (2, 3, 5, 8, 8)
    assert batch.min() == -1 and batch.max() == 1 and batch[0, :, 0, 0, 0].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "examples,message",
    [
        ([], "empty"),
        ([{"frames": np.zeros((5, 8, 8, 3))}], "'video'"),
        ([{"video": np.zeros((8, 8, 3))}], "(F, H, W, 3)"),
    ],
)
def test_collator_rejects_bad_examples(examples, message):
    with pytest.raises(ValueError, match=message.replace("(", "\\(").replace(")", "\\)")):
        VideoFramesCollator()(examples)


def test_trainer_lowers_the_reconstruction_loss_and_logs_both_terms(tmp_path):
    vae = build_tiny_vae().train()
    trainer = AutoencoderTrainer(model=vae, args=trainer_args(tmp_path, steps=6), train_dataset=tiny_clips())
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss_reconstruction" in entry]
    assert len(logs) == 6 and all(entry["loss_kl"] >= 0 for entry in logs)
    assert logs[-1]["loss_reconstruction"] < logs[0]["loss_reconstruction"]


def test_trainer_is_deterministic_in_the_seed(tmp_path):
    def final_weights(output):
        vae = build_tiny_vae().train()
        AutoencoderTrainer(model=vae, args=trainer_args(output), train_dataset=tiny_clips()).train()
        return vae.state_dict()

    first, second = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_trainer_checks_its_arguments(tmp_path):
    with pytest.raises(TypeError, match="AutoencoderKLWan"):
        AutoencoderTrainer(model=torch.nn.Linear(2, 2), args=trainer_args(tmp_path))
    with pytest.raises(ValueError, match="kl_weight must be a non-negative number, got -1"):
        AutoencoderTrainer(model=build_tiny_vae(), args=trainer_args(tmp_path), kl_weight=-1)
    with pytest.raises(ValueError, match="foreground_weight must be a non-negative number, got -2"):
        AutoencoderTrainer(model=build_tiny_vae(), args=trainer_args(tmp_path), foreground_weight=-2)
    with pytest.raises(ValueError, match="gradient_weight must be a non-negative number, got 'x'"):
        AutoencoderTrainer(model=build_tiny_vae(), args=trainer_args(tmp_path), gradient_weight="x")
    with pytest.raises(TypeError, match="sample_posterior must be a bool, got 'no'"):
        AutoencoderTrainer(model=build_tiny_vae(), args=trainer_args(tmp_path), sample_posterior="no")


def test_foreground_weight_counts_pixels_away_from_the_clip_median(tmp_path):
    vae = build_tiny_vae()
    video = VideoFramesCollator()([{"video": clip} for clip in tiny_clips()["video"]])["video"]
    for weight in (0.0, 20.0):
        trainer = AutoencoderTrainer(model=vae, args=trainer_args(tmp_path), kl_weight=0.0, foreground_weight=weight)
        with torch.no_grad():
            loss, outputs = trainer.compute_loss(vae, {"video": video}, return_outputs=True)
        error = (outputs["reconstruction"] - video).pow(2)
        median = video.flatten(2).median(dim=2).values[:, :, None, None, None]
        weights = 1 + weight * (video - median).abs().amax(dim=1, keepdim=True)
        torch.testing.assert_close(loss, (weights * error).mean() / weights.mean())
        if weight == 0:
            torch.testing.assert_close(loss, error.mean())


def test_edge_l1_compares_horizontal_and_vertical_differences():
    target = torch.zeros(1, 1, 1, 4, 4)
    target[..., 1:3, 1:3] = 1.0  # a 2x2 square: 4 horizontal and 4 vertical unit steps
    assert edge_l1(target, target) == 0
    assert edge_l1(target + 0.5, target) == 0  # a constant offset has the same edges
    blob = torch.zeros_like(target)
    torch.testing.assert_close(edge_l1(blob, target), torch.tensor(2 * 4 / 12))  # 4 of 12 unit steps per axis


def test_gradient_weight_adds_the_edge_term_and_logs_it(tmp_path):
    vae = build_tiny_vae()
    video = VideoFramesCollator()([{"video": clip} for clip in tiny_clips()["video"]])["video"]
    trainer = AutoencoderTrainer(model=vae, args=trainer_args(tmp_path), kl_weight=0.0, gradient_weight=3.0)
    with torch.no_grad():
        loss, outputs = trainer.compute_loss(vae, {"video": video}, return_outputs=True)
    reconstruction = outputs["reconstruction"]
    expected = (reconstruction - video).pow(2).mean() + 3.0 * edge_l1(reconstruction, video)
    torch.testing.assert_close(loss, expected)

    trainer = AutoencoderTrainer(
        model=vae.train(), args=trainer_args(tmp_path, steps=2), train_dataset=tiny_clips(), gradient_weight=1.0
    )
    trainer.train()
    assert all(entry["loss_gradient"] > 0 for entry in trainer.state.log_history if "loss_reconstruction" in entry)


def test_sample_posterior_false_decodes_the_posterior_mean(tmp_path):
    vae = build_tiny_vae()
    video = VideoFramesCollator()([{"video": clip} for clip in tiny_clips()["video"]])["video"]
    with torch.no_grad():
        mean_reconstruction = vae.decode(vae.encode(video).latent_dist.mean).sample
        for sample_posterior in (True, False):
            trainer = AutoencoderTrainer(model=vae, args=trainer_args(tmp_path), sample_posterior=sample_posterior)
            _, outputs = trainer.compute_loss(vae, {"video": video}, return_outputs=True)
            same = torch.allclose(outputs["reconstruction"], mean_reconstruction, atol=1e-6)
            assert same is not sample_posterior


def test_a_frozen_encoder_trains_the_decoder_alone(tmp_path):
    vae = build_tiny_vae().train()
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    before = {name: tensor.clone() for name, tensor in vae.state_dict().items()}
    args = trainer_args(tmp_path, weight_decay=0.1)
    AutoencoderTrainer(model=vae, args=args, train_dataset=tiny_clips(), gradient_weight=1.0).train()
    after = vae.state_dict()
    frozen = [name for name in before if name.startswith(("encoder.", "quant_conv."))]
    trained = [name for name in before if name.startswith(("decoder.", "post_quant_conv.")) and "weight" in name]
    assert frozen and all(torch.equal(before[name], after[name]) for name in frozen)
    assert any(not torch.equal(before[name], after[name]) for name in trained)


def test_latent_statistics_are_per_channel_moments_of_the_posterior_mean():
    vae = build_tiny_vae()
    videos = tiny_clips(3)["video"]
    mean, std = latent_statistics(vae, videos, batch_size=2)
    assert len(mean) == len(std) == vae.config.z_dim
    with torch.no_grad():
        batch = VideoFramesCollator()([{"video": video} for video in videos])["video"]
        latents = vae.encode(batch).latent_dist.mean.transpose(0, 1).flatten(1)
    torch.testing.assert_close(torch.tensor(mean), latents.mean(dim=1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.tensor(std), latents.std(dim=1), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="videos is empty"):
        latent_statistics(vae, [])
