"""Stage 0: train (or fine-tune) a Wan2.1 text-to-video base with the same script, data pipeline and Trainer as the
Uni-ViGU stages. The model is grown into a UniViGUModel for the run and trained video-only (`trainable="video"`, no
text stream: the forward is exactly WanTransformer3DModel's); the output directory is a diffusers `WanPipeline`,
ready for `examples/train_recall.py --init_from <output_dir>`.

    python examples/train_base.py --init_from path/to/wan_pipeline --dataset_name path/to/videos --output_dir base

See docs/training.md.
"""

from univigu_hf.training.script import run


if __name__ == "__main__":
    run("base")
