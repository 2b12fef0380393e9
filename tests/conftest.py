"""Fixtures of the tests; the tiny component builders are `univigu_hf.testing` (2 layers, 2 heads, CPU, fp32)."""

import os


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402

from univigu_hf.testing import build_tiny_pipelines, build_tiny_univigu, build_tiny_video_folder, build_tiny_wan  # noqa: E402


@pytest.fixture
def tiny_wan():
    return build_tiny_wan()


@pytest.fixture
def tiny_model():
    return build_tiny_univigu()


@pytest.fixture
def tiny_pipelines():
    return build_tiny_pipelines()


@pytest.fixture
def tiny_pipe(tiny_pipelines):
    return tiny_pipelines[0]


@pytest.fixture
def tiny_video_folder(tmp_path):
    return build_tiny_video_folder(tmp_path / "videos")
