"""The shapes world: a procedural video world whose generation and captioning can be scored exactly (the demo of
the embedded default model, `univigu_hf.DEFAULT_MODEL`).

`world` renders clips and captions, `detection` and `scoring` read them back, `metrics/` wraps the scorer as
`evaluate` metrics, `autoencoder` trains the demo's small VAE, and `default_model/` is the trained pipeline. `demo` and
`foundation_demo` are what `univigu demo` and `univigu demo --foundation` run.
"""

from .world import (
    ALL_PROMPTS,
    ATTRIBUTE_VALUES,
    BACKGROUND_VALUES,
    BACKGROUNDS,
    CAPTION_TEMPLATES,
    COLORS,
    COLUMNS,
    DIRECTION_VECTORS,
    DIRECTIONS,
    GRID,
    HALF_SIZES,
    HELD_OUT_PROMPTS,
    JITTER,
    PALETTE,
    PROMPT_TEMPLATE,
    ROWS,
    SHAPES,
    SIZES,
    SPEEDS,
    SPLITS,
    START_POSITIONS,
    SUPERSAMPLING,
    TRAIN_PROMPTS,
    TRAVEL,
    ShapeAttributes,
    ShapeClip,
    export_folder,
    generate_clips,
    parse_prompt,
    render,
    sample_attributes,
    shapes_dataset,
    valid_starts,
    world_text,
)


def default_mag_cache_config(**overrides):
    """
    diffusers' `MagCacheConfig` with the magnitude ratios measured for the embedded default model
    (`default_model/mag_ratios.json`, from `univigu calibrate-mag-cache`: 8 training prompts, its 20 steps).

    Args:
        **overrides: other `MagCacheConfig` fields (`threshold`, `max_skip_steps`, `num_inference_steps`, ...).
    """
    import json
    import os

    from diffusers import MagCacheConfig

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_model", "mag_ratios.json")
    with open(path, encoding="utf-8") as handle:
        measured = json.load(handle)
    values = {"mag_ratios": measured["mag_ratios"], "num_inference_steps": measured["num_inference_steps"]}
    values.update(overrides)
    return MagCacheConfig(**values)


__all__ = [
    "ALL_PROMPTS",
    "ATTRIBUTE_VALUES",
    "BACKGROUNDS",
    "BACKGROUND_VALUES",
    "CAPTION_TEMPLATES",
    "COLORS",
    "COLUMNS",
    "DIRECTIONS",
    "DIRECTION_VECTORS",
    "GRID",
    "HALF_SIZES",
    "HELD_OUT_PROMPTS",
    "JITTER",
    "PALETTE",
    "PROMPT_TEMPLATE",
    "ROWS",
    "SHAPES",
    "SIZES",
    "SPEEDS",
    "SPLITS",
    "START_POSITIONS",
    "SUPERSAMPLING",
    "ShapeAttributes",
    "ShapeClip",
    "TRAIN_PROMPTS",
    "TRAVEL",
    "default_mag_cache_config",
    "export_folder",
    "generate_clips",
    "parse_prompt",
    "render",
    "sample_attributes",
    "shapes_dataset",
    "valid_starts",
    "world_text",
]
