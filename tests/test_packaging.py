"""The built wheel works on its own: installed in a fresh venv it loads the embedded model, captions the shipped
sample and takes a LoRA adapter through transformers' `add_adapter`; and the lock covers what the package needs."""

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version


tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+ (tomllib)")


ROOT = Path(__file__).resolve().parent.parent
# `make lock` points this at the candidate lock it is testing.
LOCK = Path(os.environ.get("UNIVIGU_LOCK_FILE", ROOT / "requirements" / "lock.txt"))

SMOKE = """
import os, sys, time
start = time.perf_counter()
import torch
from peft import LoraConfig
import univigu_hf
from univigu_hf import UniViGUPipeline

assert univigu_hf.__file__.startswith(sys.prefix), univigu_hf.__file__
pipe = UniViGUPipeline.from_pretrained(univigu_hf.DEFAULT_MODEL)
pipe.set_progress_bar_config(disable=True)
text = pipe.caption(univigu_hf.SAMPLE_VIDEO, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).text
assert isinstance(text[0], str) and text[0].strip(), text
model = pipe.transformer
model.add_adapter(LoraConfig(r=4, target_modules=["to_q"]))
assert model.active_adapters() == ["default"], model.active_adapters()
print(f"ok {time.perf_counter() - start:.1f}s: {text[0]!r}")
"""


def _locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_lock_pins_every_dependency_exactly():
    pins = _locked()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    for requirement in requirements:
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name == "torch":
            assert name not in pins, "torch is installed from the Makefile's TORCH, not from the lock"
            continue
        assert name in pins, f"{requirement.name} is not in {LOCK.name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]}, outside pyproject.toml's range {requirement}"
        )
    for tool in ("pip", "setuptools"):
        assert tool in pins, f"{tool} must be locked too (make install builds the package with the locked setuptools)"


def _torch_floor() -> Version:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (torch,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "torch"]
    (floor,) = [Version(spec.version) for spec in torch.specifier if spec.operator == ">="]
    return floor


def test_the_torch_floor_is_what_the_locked_libraries_require():
    # Each direct dependency's own torch requirement (unconditional, or in the `torch` extra through which
    # transformers and diffusers declare it), read from the installed (locked) distributions.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for requirement in map(Requirement, project["dependencies"]):
        if requirement.name == "torch":
            continue
        for line in importlib.metadata.requires(requirement.name) or []:
            needs = Requirement(line)
            if needs.name != "torch" or (needs.marker is not None and not needs.marker.evaluate({"extra": "torch"})):
                continue
            for spec in needs.specifier:
                if spec.operator in (">=", ">", "=="):
                    floors[requirement.name] = max(floors.get(requirement.name, Version("0")), Version(spec.version))
    assert floors, "no dependency states a torch version"
    assert max(floors.values()) <= _torch_floor(), f"pyproject.toml's torch floor is below {floors}"
    assert _torch_floor() in floors.values(), f"torch>={_torch_floor()} is not what any dependency needs: {floors}"


QUIET_IMPORT = """
import sys
{prelude}
import univigu_hf
from univigu_hf import UniViGUPipeline
from univigu_hf.testing import build_tiny_pipelines

pipe = build_tiny_pipelines()[0]
assert isinstance(pipe, UniViGUPipeline)
"""


def test_import_univigu_hf_prints_nothing():
    result = subprocess.run(
        [sys.executable, "-c", "import univigu_hf"], capture_output=True, text=True, timeout=120, check=True
    )
    assert (result.stdout, result.stderr) == ("", "")


@pytest.mark.slow
def test_a_plain_install_prints_nothing_while_loading_the_libraries():
    # Without the `quantization` extra (torchao is not installed; hidden here, should this environment have it),
    # importing the pipeline and building one prints nothing: diffusers imports torchao whenever it is installed,
    # and torchao prints warnings at that import where its compiled kernels do not load.
    prelude = "sys.modules['torchao'] = None  # as if not installed" if importlib.util.find_spec("torchao") else ""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [sys.executable, "-c", QUIET_IMPORT.format(prelude=prelude)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (result.stdout, result.stderr) == ("", "")


@pytest.mark.slow
def test_built_wheel_works_in_a_fresh_venv(tmp_path):
    # Build from a copy so that the checkout gets no build/ or egg-info; no build isolation, so nothing downloads.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-w", tmp_path / "dist", source],
        check=True,
    )
    (wheel,) = (tmp_path / "dist").glob("univigu_hf-*.whl")

    # A fresh venv with the wheel, which then sees this environment's dependencies through a .pth file (added after
    # the install, so that pip cannot take this environment's univigu_hf for the wheel). Its own site-packages come
    # first on sys.path, and a folder named in a .pth file has its own .pth files (an editable install's) ignored.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel], check=True)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    result = subprocess.run([python, "-c", SMOKE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok "), result.stdout
    version = subprocess.run(
        [venv / "bin" / "univigu", "--version"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert version.returncode == 0 and version.stdout.startswith("univigu_hf "), version.stderr[-2000:]
