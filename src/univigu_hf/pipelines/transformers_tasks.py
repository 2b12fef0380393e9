"""
transformers `pipeline()` tasks for Uni-ViGU: `"video-to-text"`, `"text-to-video"` and `"text-to-video-text"`.

Importing `univigu_hf` registers the three tasks, after which a folder saved by `UniViGUPipeline.save_pretrained`
(or its Hub repo id) works as a transformers one-liner:

    >>> import univigu_hf
    >>> from transformers import pipeline
    >>> captioner = pipeline("video-to-text", model="path/or/repo-id")
    >>> captioner("clip.mp4")
    [{'generated_text': '...'}]

transformers loads the `UniViGUModel` through `AutoModel` (the folder's root `config.json` and
`model.safetensors.index.json`); the pipelines wrap it in a [`UniViGUPipeline`] built once from the same folder, so the
denoising itself is `UniViGUPipeline.caption` / `generate_video` / `generate_joint`.
"""

import inspect
import math
import os
import types
from collections.abc import Iterable
from typing import Any

import numpy as np
import PIL.Image
import torch
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.utils import logging

from .univigu import UniViGUPipeline
from .video_io import to_clips


logger = logging.get_logger(__name__)

VIDEO_TO_TEXT_TASK = "video-to-text"
TEXT_TO_VIDEO_TASK = "text-to-video"
JOINT_TASK = "text-to-video-text"


class _UniViGUTaskPipeline(Pipeline):
    """
    Shared machinery of the Uni-ViGU transformers pipelines.

    `self.model` is the [`UniViGUModel`] that `pipeline()` loaded with `AutoModel`; the VAE, text encoder, tokenizer
    and scheduler come from the same folder / repo id through [`UniViGUPipeline.from_pretrained`] (with
    `transformer=self.model`, so the weights are loaded once), in the model's dtype, on `self.device`.

    A list (or tuple) of inputs is run as one batch through one `UniViGUPipeline` call, so a single `generator`
    behaves exactly as in a direct call on the same list; `batch_size=N` splits the list into calls of `N` inputs
    (then pass a list of generators, one per output, for results that do not depend on `N`). Generators and
    `datasets.Dataset` inputs are streamed in calls of `batch_size` (default 1) inputs.

    Args:
        model ([`UniViGUModel`]): the unified transformer (`model.name_or_path` must be the saved pipeline folder or
            repo id, unless `univigu_pipeline` is given).
        univigu_pipeline ([`UniViGUPipeline`], *optional*): an already built pipeline to use instead of loading one.
        **kwargs: the `transformers.Pipeline` arguments (`device`, `batch_size`, ...) and default call parameters.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False
    # The tokenizer lives in the `tokenizer/` subfolder, which `pipeline()` cannot load (it looks at the repository
    # root and would fail); `UniViGUPipeline.from_pretrained` loads it, and a `tokenizer=` passed to `pipeline()` is
    # forwarded to it.
    _load_tokenizer = False

    # Set by the subclasses.
    _method_name: str = ""
    _input_name: str = "inputs"
    _postprocess_keys: tuple[str, ...] = ()

    def __init__(self, model, *args, univigu_pipeline: UniViGUPipeline | None = None, **kwargs):
        super().__init__(model, *args, **kwargs)
        if isinstance(self.tokenizer, (str, tuple, os.PathLike)):
            raise TypeError(
                "tokenizer must be a loaded tokenizer object (these tasks do not load tokenizers by name; by default "
                f"the `tokenizer/` subfolder of the model repository is used), got {self.tokenizer!r}"
            )
        if univigu_pipeline is not None and not isinstance(univigu_pipeline, UniViGUPipeline):
            raise TypeError(f"univigu_pipeline must be a UniViGUPipeline, got {type(univigu_pipeline).__name__}")
        self._univigu_pipeline = univigu_pipeline
        self._build_univigu_pipeline()

    # ----------------------------------------------------------------------------------------------------------------
    # The diffusers pipeline
    # ----------------------------------------------------------------------------------------------------------------
    def _build_univigu_pipeline(self) -> UniViGUPipeline:
        if self._univigu_pipeline is None:
            source = getattr(self.model, "name_or_path", None)
            if not source:
                raise ValueError(
                    f"The {self.task!r} pipeline needs the folder or repo id the model was saved in "
                    "(`model.name_or_path` is empty): load the model from a saved UniViGUPipeline or pass "
                    "`univigu_pipeline=`."
                )
            components: dict[str, Any] = {"transformer": self.model, "dtype": self.model.dtype}
            if self.tokenizer is not None:
                components["tokenizer"] = self.tokenizer
            logger.info(f"Loading the UniViGUPipeline components from {source!r}")
            self._univigu_pipeline = UniViGUPipeline.from_pretrained(source, **components)
        elif self._univigu_pipeline.transformer is not self.model:
            raise ValueError("univigu_pipeline.transformer must be the pipeline's model")
        if getattr(self.model, "hf_device_map", None) is None:
            self._univigu_pipeline.to(self.device)
        if self.tokenizer is None:
            self.tokenizer = self._univigu_pipeline.tokenizer
        return self._univigu_pipeline

    @property
    def univigu_pipeline(self) -> UniViGUPipeline:
        """The [`UniViGUPipeline`] doing the work (e.g. to call `set_progress_bar_config(disable=True)`)."""
        return self._univigu_pipeline

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """
        Saves the whole Uni-ViGU repository (`UniViGUPipeline.save_pretrained`), which both diffusers and these
        transformers tasks load back.

        Args:
            save_directory (`str` or `os.PathLike`): the target folder.
            **kwargs: passed to `UniViGUPipeline.save_pretrained` (e.g. `safe_serialization`, `push_to_hub`).
        """
        self.univigu_pipeline.save_pretrained(save_directory, **kwargs)

    # ----------------------------------------------------------------------------------------------------------------
    # Parameters
    # ----------------------------------------------------------------------------------------------------------------
    @classmethod
    def _forward_parameter_names(cls) -> list[str]:
        signature = inspect.signature(getattr(UniViGUPipeline, cls._method_name))
        skip = {"self", cls._input_name, "return_dict"}
        return [name for name in signature.parameters if name not in skip]

    def _sanitize_parameters(self, **kwargs):
        """
        Sorts call / construction kwargs: `fps` goes to `postprocess`, the underlying `UniViGUPipeline` method's
        arguments go to `_forward`.

        Args:
            **kwargs: the keyword arguments given to `pipeline(...)` or to the call.

        Returns:
            `tuple[dict, dict, dict]`: preprocess, forward and postprocess parameters.
        """
        allowed = self._forward_parameter_names()
        forward_params, postprocess_params = {}, {}
        for name, value in kwargs.items():
            if name in self._postprocess_keys:
                postprocess_params[name] = _check_fps(value) if name == "fps" and value is not None else value
            elif name in allowed:
                forward_params[name] = value
            else:
                raise TypeError(
                    f"The {self.task or self._method_name!r} pipeline got an unexpected keyword argument {name!r}; "
                    f"it accepts {sorted([*allowed, *self._postprocess_keys, 'batch_size'])}"
                )
        return {}, forward_params, postprocess_params

    # ----------------------------------------------------------------------------------------------------------------
    # Calling
    # ----------------------------------------------------------------------------------------------------------------
    def _split_inputs(self, inputs) -> tuple[list, bool]:
        """Returns `(items, batched)`: the list of single inputs and whether the call received a batch."""
        raise NotImplementedError

    def _per_item_count(self, forward_params: dict) -> int:
        """How many outputs (and per-output generators) one input produces."""
        return 1

    def __call__(self, inputs, **kwargs):
        """
        Runs the task on one input or a batch of inputs (see the subclass docstrings for inputs and outputs).

        Args:
            inputs: one input or a list of them (or a generator / `datasets.Dataset`, streamed).
            batch_size (`int`, *optional*): inputs per `UniViGUPipeline` call (default: the whole list).
            **kwargs: passed to the underlying `UniViGUPipeline` method.

        Returns:
            One result for a single input, a list of results for a list of inputs, an iterator for a stream.
        """
        batch_size = kwargs.pop("batch_size", None)
        batch_size = self._batch_size if batch_size is None else batch_size
        kwargs.pop("num_workers", None)
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        preprocess_params, forward_params, postprocess_params = self._sanitize_parameters(**kwargs)
        preprocess_params = {**self._preprocess_params, **preprocess_params}
        forward_params = {**self._forward_params, **forward_params}
        postprocess_params = {**self._postprocess_params, **postprocess_params}
        self.call_count += 1

        if isinstance(inputs, (types.GeneratorType, torch.utils.data.Dataset)) or _is_dataset(inputs):
            return self._stream(inputs, batch_size or 1, preprocess_params, forward_params, postprocess_params)
        items, batched = self._split_inputs(inputs)
        outputs = self._run_batches(items, batch_size, preprocess_params, forward_params, postprocess_params)
        return outputs if batched else outputs[0]

    def _stream(self, inputs: Iterable, batch_size: int, preprocess_params, forward_params, postprocess_params):
        chunk = []
        for item in inputs:
            items, batched = self._split_inputs(item)
            if batched:
                raise ValueError(f"each element of a streamed {self._input_name} input must be a single input")
            chunk.extend(items)
            if len(chunk) == batch_size:
                yield from self._run_batches(chunk, None, preprocess_params, forward_params, postprocess_params)
                chunk = []
        if chunk:
            yield from self._run_batches(chunk, None, preprocess_params, forward_params, postprocess_params)

    def _run_batches(self, items: list, batch_size: int | None, preprocess_params, forward_params, postprocess_params):
        per_item = self._per_item_count(forward_params)
        _check_per_sample_lengths(forward_params, len(items), per_item, self._per_sample_keys())
        size = len(items) if batch_size is None else batch_size
        outputs = []
        for start in range(0, len(items), size):
            stop = min(start + size, len(items))
            params = forward_params
            if (start, stop) != (0, len(items)):
                params = _slice_per_sample(forward_params, start, stop, per_item, self._per_sample_keys())
            model_inputs = self.preprocess(items[start:stop], **preprocess_params)
            model_outputs = self.forward(model_inputs, **params)
            outputs.extend(self.postprocess(model_outputs, **postprocess_params))
        return outputs

    def _per_sample_keys(self) -> dict[str, int]:
        """Forward parameters that may hold one entry per input (`1`) or per output (`0`: `per_item` entries)."""
        return {"generator": 0}

    def _run(self, **kwargs) -> Any:
        return getattr(self.univigu_pipeline, self._method_name)(**kwargs, return_dict=True)


def _check_fps(fps) -> int | float:
    """`fps` if it is a finite positive number (checked when the call is made, before any generation)."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a finite positive number (frames per second), got {fps!r}")
    return fps


class VideoToTextPipeline(_UniViGUTaskPipeline):
    r"""
    `pipeline("video-to-text")`: captions videos with [`UniViGUPipeline.caption`].

    Inputs: one video — a file path (mp4, gif, webm, ...), a list of `PIL.Image` frames, a `np.ndarray`
    `(frames, height, width, 3)` (uint8, or float in [0, 1]) or a `torch.Tensor` `(frames, 3, height, width)` in [0, 1]
    — or a list of videos (a 5-D array / tensor is a batch of videos).

    Call parameters (passed to `caption`): `prompt`, `max_text_length`, `num_inference_steps`, `generator`, `height`,
    `width`, `num_frames`, `max_sequence_length`, `callback_on_step_end`, `callback_on_step_end_tensor_inputs`,
    `video_cache`, `video_cache_refresh`, and `batch_size`.

    Returns: for one video `[{"generated_text": caption}]`; for a list of videos, one such list per video.
    """

    _method_name = "caption"
    _input_name = "video"

    def _split_inputs(self, inputs) -> tuple[list, bool]:
        if isinstance(inputs, (str, os.PathLike, PIL.Image.Image)):
            return [inputs], False
        if isinstance(inputs, (np.ndarray, torch.Tensor)):
            if inputs.ndim == 5:
                if inputs.shape[0] == 0:
                    raise ValueError("inputs (the videos) must not be an empty batch")
                return list(inputs), True
            return [inputs], False
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise ValueError("inputs (the videos) must not be an empty list")
            if all(isinstance(frame, PIL.Image.Image) for frame in inputs):
                return [list(inputs)], False  # a list of frames is one video
            return list(inputs), True
        raise TypeError(
            "inputs must be a video (a file path, a list of PIL images, a numpy array (frames, height, width, 3) or "
            f"a torch tensor (frames, 3, height, width)) or a list of videos, got {type(inputs).__name__}"
        )

    def _per_sample_keys(self) -> dict[str, int]:
        return {"generator": 0, "prompt": 1}

    def preprocess(self, videos: list, **preprocess_params) -> dict[str, Any]:
        """
        Validates and opens each video as a [`~univigu_hf.pipelines.video_io.VideoClip`] (files are counted, not
        decoded: the pipeline reads only the frames it uses).

        Args:
            videos (`list`): single videos (see the class docstring for the layouts).

        Returns:
            `dict` with `"videos"`: the list of clips.
        """
        clips = []
        for video in videos:
            opened = to_clips(video)
            if len(opened) != 1:
                raise ValueError(
                    f"each element of a list of videos must be one video, got a batch of {len(opened)} in one element"
                )
            clips.extend(opened)
        return {"videos": clips}

    def _forward(self, model_inputs: dict[str, Any], **forward_params) -> dict[str, Any]:
        """One `UniViGUPipeline.caption` call on the batch; returns `{"text": list[str]}`."""
        return {"text": self._run(video=model_inputs["videos"], **forward_params).text}

    def postprocess(self, model_outputs: dict[str, Any], **postprocess_params) -> list[list[dict[str, str]]]:
        """
        Args:
            model_outputs (`dict`): `{"text": list[str]}`.

        Returns:
            `list[list[dict]]`: `[{"generated_text": caption}]` per video.
        """
        return [[{"generated_text": text}] for text in model_outputs["text"]]


class _PromptPipeline(_UniViGUTaskPipeline):
    _input_name = "prompt"
    _postprocess_keys = ("fps",)

    def _split_inputs(self, inputs) -> tuple[list, bool]:
        if isinstance(inputs, str):
            return [inputs], False
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise ValueError("inputs (the prompts) must not be an empty list")
            if all(isinstance(prompt, str) for prompt in inputs):
                return list(inputs), True
        raise TypeError(
            f"inputs (the prompt) must be a string or a list of strings, got {type(inputs).__name__} {inputs!r}"[:300]
        )

    def _per_item_count(self, forward_params: dict) -> int:
        count = forward_params.get("num_videos_per_prompt", 1)
        return count if isinstance(count, int) and count >= 1 else 1

    def _per_sample_keys(self) -> dict[str, int]:
        return {"generator": 0, "latents": 0, "negative_prompt": 1}

    def preprocess(self, prompts: list[str], **preprocess_params) -> dict[str, Any]:
        """
        Args:
            prompts (`list[str]`): the prompts of this batch.

        Returns:
            `dict` with `"prompts"`.
        """
        return {"prompts": prompts}

    def _videos(self, frames, count: int) -> list:
        """Splits the batch output into one entry per prompt (`count` videos per prompt, squeezed when 1)."""
        videos = []
        for start in range(0, len(frames), count):
            chunk = frames[start : start + count]
            videos.append(chunk[0] if count == 1 else chunk)
        return videos

    def _fps(self, fps) -> int | float:
        return _check_fps(self.univigu_pipeline.config.default_fps if fps is None else fps)


class TextToVideoPipeline(_PromptPipeline):
    r"""
    `pipeline("text-to-video")`: generates videos with [`UniViGUPipeline.generate_video`].

    Inputs: a prompt or a list of prompts.

    Call parameters (passed to `generate_video`): `negative_prompt`, `height`, `width`, `num_frames`,
    `num_inference_steps`, `guidance_scale`, `num_videos_per_prompt`, `use_text_stream`, `max_text_length`,
    `generator`, `latents`, `output_type` ("np" default, "pil", "pt", "latent"), `max_sequence_length`, callbacks;
    plus `fps` (reported frame rate, default: the pipeline config's `default_fps`) and `batch_size`.

    Returns: per prompt `{"video": frames, "fps": fps}` — like text-to-audio's `{"audio", "sampling_rate"}`. `frames`
    is `(frames, height, width, 3)` float in [0, 1] for "np", a list of `PIL.Image` for "pil", `(frames, 3, height,
    width)` for "pt"; with `num_videos_per_prompt > 1` it holds that many videos (stacked / a list).
    """

    _method_name = "generate_video"

    def _forward(self, model_inputs: dict[str, Any], **forward_params) -> dict[str, Any]:
        """One `UniViGUPipeline.generate_video` call on the batch; returns the frames and videos per prompt."""
        frames = self._run(prompt=model_inputs["prompts"], **forward_params).frames
        return {"frames": frames, "count": self._per_item_count(forward_params)}

    def postprocess(self, model_outputs: dict[str, Any], fps=None) -> list[dict[str, Any]]:
        """
        Args:
            model_outputs (`dict`): the batch's frames and videos per prompt.
            fps (`int` or `float`, *optional*): frame rate to report (default: the config's `default_fps`).

        Returns:
            `list[dict]`: `{"video": ..., "fps": ...}` per prompt.
        """
        fps = self._fps(fps)
        return [
            {"video": video, "fps": fps} for video in self._videos(model_outputs["frames"], model_outputs["count"])
        ]


class TextToVideoTextPipeline(_PromptPipeline):
    r"""
    `pipeline("text-to-video-text")`: generates videos and their captions together with
    [`UniViGUPipeline.generate_joint`].

    Inputs: a prompt or a list of prompts.

    Call parameters (passed to `generate_joint`): those of `"text-to-video"` (no `use_text_stream`), with
    `max_text_length` the caption length; plus `fps` and `batch_size`.

    Returns: per prompt `{"video": frames, "fps": fps, "generated_text": caption}` (with `num_videos_per_prompt > 1`,
    `video` holds that many videos and `generated_text` is a list of captions).
    """

    _method_name = "generate_joint"

    def _forward(self, model_inputs: dict[str, Any], **forward_params) -> dict[str, Any]:
        """One `UniViGUPipeline.generate_joint` call on the batch; returns frames, captions and videos per prompt."""
        output = self._run(prompt=model_inputs["prompts"], **forward_params)
        return {"frames": output.frames, "text": output.text, "count": self._per_item_count(forward_params)}

    def postprocess(self, model_outputs: dict[str, Any], fps=None) -> list[dict[str, Any]]:
        """
        Args:
            model_outputs (`dict`): the batch's frames, captions and videos per prompt.
            fps (`int` or `float`, *optional*): frame rate to report (default: the config's `default_fps`).

        Returns:
            `list[dict]`: `{"video": ..., "fps": ..., "generated_text": ...}` per prompt.
        """
        fps = self._fps(fps)
        count = model_outputs["count"]
        videos = self._videos(model_outputs["frames"], count)
        texts = self._videos(model_outputs["text"], count)
        return [{"video": v, "fps": fps, "generated_text": t} for v, t in zip(videos, texts)]


# --------------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------------
def _is_dataset(inputs) -> bool:
    try:
        from datasets import Dataset, IterableDataset
    except ImportError:  # pragma: no cover - datasets is a dependency
        return False
    return isinstance(inputs, (Dataset, IterableDataset))


def _is_sequence(value) -> bool:
    return isinstance(value, (list, tuple, torch.Tensor))


def _check_per_sample_lengths(params: dict, num_items: int, per_item: int, keys: dict[str, int]) -> None:
    for name, unit in keys.items():
        value = params.get(name)
        if not _is_sequence(value) or (isinstance(value, torch.Tensor) and value.ndim == 0):
            continue
        expected = num_items if unit == 1 else num_items * per_item
        if len(value) != expected and not (unit == 1 and len(value) == 1):
            what = "input" if unit == 1 else "output"
            raise ValueError(f"{name} has {len(value)} entries but this call has {expected} (one per {what})")


def _slice_per_sample(params: dict, start: int, stop: int, per_item: int, keys: dict[str, int]) -> dict:
    sliced = dict(params)
    for name, unit in keys.items():
        value = params.get(name)
        if not _is_sequence(value) or (isinstance(value, torch.Tensor) and value.ndim == 0):
            continue
        if unit == 1 and len(value) == 1:
            continue  # one entry shared by every input
        scale = 1 if unit == 1 else per_item
        sliced[name] = value[start * scale : stop * scale]
    return sliced


for _task, _pipeline_class in (
    (VIDEO_TO_TEXT_TASK, VideoToTextPipeline),
    (TEXT_TO_VIDEO_TASK, TextToVideoPipeline),
    (JOINT_TASK, TextToVideoTextPipeline),
):
    if PIPELINE_REGISTRY.supported_tasks.get(_task, {}).get("impl") is not _pipeline_class:
        PIPELINE_REGISTRY.register_pipeline(
            _task, pipeline_class=_pipeline_class, pt_model=AutoModel, type="multimodal"
        )

__all__ = ["TextToVideoPipeline", "TextToVideoTextPipeline", "VideoToTextPipeline"]
