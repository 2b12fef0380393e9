"""Every file written for a user is complete or absent: videos, reports, model cards, datasets (checkpoints: see
test_saving.py). Read-only folders, full disks, a folder in the file's place and Ctrl-C mid-write raise a clear error
(exit status 2 in the command) and leave the target as it was, with no temporary file behind."""

import errno
import json
import os

import numpy as np
import pytest

from univigu_hf.cli import main
from univigu_hf.pipelines import video_io
from univigu_hf.shapes import demo, world
from univigu_hf.testing import build_tiny_pipelines
from univigu_hf.utils import saving
from univigu_hf.utils.saving import atomic_file, write_text_atomic


FRAMES = np.random.default_rng(0).random((5, 16, 16, 3)).astype(np.float32)


def leftovers(folder) -> list[str]:
    return [name for name in os.listdir(folder) if saving.STAGING_PREFIX in name]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny"
    build_tiny_pipelines()[0].save_pretrained(path)
    return str(path)


def _generate(capsys, model_dir, output, *extra):
    code = main(
        ["generate", "--model", model_dir, "--prompt", "a", "--output", str(output), "--steps", "1", "--quiet", *extra]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("extension", [".mp4", ".gif"])
def test_write_video_is_complete_and_keeps_permissions(tmp_path, extension):
    path = tmp_path / f"clip{extension}"
    video_io.write_video(FRAMES, str(path), fps=8)
    assert video_io.open_video_file(str(path)).num_frames == 5 and leftovers(tmp_path) == []
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("failure", ["raises ENOSPC", "writes a truncated file silently"])
def test_a_full_disk_is_an_error_and_leaves_the_previous_video(tmp_path, monkeypatch, failure):
    path = tmp_path / "clip.mp4"
    video_io.write_video(FRAMES, str(path), fps=8)
    before = path.read_bytes()

    def full_disk(frames, target, fps, **kwargs):
        with open(target, "wb") as handle:
            handle.write(before[: len(before) // 3])
        if failure == "raises ENOSPC":
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("diffusers.utils.export_to_video", full_disk)
    with pytest.raises(OSError, match="No space left on device" if failure == "raises ENOSPC" else "is the disk full"):
        video_io.write_video(FRAMES[:3], str(path), fps=8)
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_ctrl_c_mid_write_leaves_no_partial_video(tmp_path, monkeypatch):
    path = tmp_path / "clip.gif"

    def interrupted(target, frames, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"GIF89a partial")
        raise KeyboardInterrupt

    monkeypatch.setattr("imageio.mimsave", interrupted)
    with pytest.raises(KeyboardInterrupt):
        video_io.write_video(FRAMES, str(path), fps=8)
    assert not path.exists() and leftovers(tmp_path) == []


def test_a_folder_in_the_files_place_is_refused(tmp_path):
    (tmp_path / "clip.mp4").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        video_io.write_video(FRAMES, str(tmp_path / "clip.mp4"), fps=8)
    with pytest.raises(IsADirectoryError):
        write_text_atomic(tmp_path / "clip.mp4", "text")


def _read_only(folder, monkeypatch):
    """Makes `folder` read-only; as root (where permissions do not bind) creating a file in it is made to fail."""
    os.chmod(folder, 0o555)
    if os.geteuid() == 0:

        def refuse(*args, dir=None, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", dir)

        monkeypatch.setattr(saving.tempfile, "mkstemp", refuse)
        monkeypatch.setattr(os, "access", lambda path, mode: not (mode & os.W_OK and os.path.samefile(path, folder)))


def test_a_read_only_folder_is_an_error(tmp_path, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    _read_only(folder, monkeypatch)
    try:
        with pytest.raises(PermissionError):
            video_io.write_video(FRAMES, str(folder / "clip.mp4"), fps=8)
        with pytest.raises(PermissionError):
            write_text_atomic(folder / "report.json", "{}")
    finally:
        os.chmod(folder, 0o755)
    assert os.listdir(folder) == []


def test_the_command_refuses_unwritable_targets_before_running(tmp_path, model_dir, capsys, monkeypatch):
    (tmp_path / "taken.mp4").mkdir()
    code, out, err = _generate(capsys, model_dir, tmp_path / "taken.mp4")
    assert code == 2 and out == "" and "is a folder" in err and len(err.strip().splitlines()) == 1
    folder = tmp_path / "locked"
    folder.mkdir()
    _read_only(folder, monkeypatch)
    try:
        code, out, err = _generate(capsys, model_dir, folder / "x.mp4")
    finally:
        os.chmod(folder, 0o755)
    assert code == 2 and "not writable" in err and os.listdir(folder) == []


def test_the_command_reports_a_failed_write_instead_of_success(tmp_path, model_dir, capsys, monkeypatch):
    def full_disk(frames, target, fps, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("diffusers.utils.export_to_video", full_disk)
    for extra in ([], ["--json"]):
        code, out, err = _generate(capsys, model_dir, tmp_path / "x.mp4", *extra)
        assert code == 2 and "Saved" not in out and out == ""
        assert "could not write" in err and "No space left on device" in err
    assert not (tmp_path / "x.mp4").exists() and leftovers(tmp_path) == []


def test_a_model_card_is_written_whole(tmp_path, model_dir, capsys, monkeypatch):
    target = tmp_path / "README.md"
    assert main(["card", model_dir, "--output", str(target)]) == 0
    card = target.read_text()
    assert card.startswith("---")

    class Interrupted:
        """A file that is cut off by Ctrl-C after part of the text."""

        def __init__(self, path, *args, **kwargs):
            self.handle = open(path, *args, **kwargs)

        def write(self, text):
            self.handle.write(text[:10])
            raise KeyboardInterrupt

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    capsys.readouterr()
    monkeypatch.setattr(saving, "open", Interrupted, raising=False)
    assert main(["card", model_dir, "--output", str(target)]) == 130  # Ctrl-C: the shell's status, one line
    assert capsys.readouterr().err.strip() == "univigu card: interrupted"
    monkeypatch.undo()
    assert target.read_text() == card and leftovers(tmp_path) == []


def test_demo_reports_are_written_whole(tmp_path, monkeypatch):
    report = {"rows": [1, 2, 3]}
    monkeypatch.setattr(demo, "demo_markdown", lambda report: "# report\n")
    demo.write_report(report, str(tmp_path))
    assert json.loads((tmp_path / "report.json").read_text()) == report

    def interrupted(report):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "demo_markdown", interrupted)
    with pytest.raises(KeyboardInterrupt):
        demo.write_report({"rows": []}, str(tmp_path))
    assert (tmp_path / "report.md").read_text() == "# report\n" and leftovers(tmp_path) == []


def test_an_interrupted_dataset_export_leaves_no_dataset(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    original = world.generate_clips

    def interrupted(*args, **kwargs):
        for index, clip in enumerate(original(*args, **kwargs)):
            if index == 2:
                raise KeyboardInterrupt
            yield clip

    monkeypatch.setattr(world, "generate_clips", interrupted)
    with pytest.raises(KeyboardInterrupt):
        world.export_folder(folder, 4, seed=0)
    assert not folder.exists() and leftovers(tmp_path) == []
    monkeypatch.undo()
    world.export_folder(folder, 3, seed=0)
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all((folder / row["file_name"]).is_file() for row in rows)


def test_atomic_file_keeps_the_extension_for_format_sniffing_writers(tmp_path):
    with atomic_file(tmp_path / "frames.png") as temporary:
        assert temporary.endswith(".png") and os.path.dirname(temporary) == str(tmp_path)
        with open(temporary, "w") as handle:
            handle.write("x")
    assert (tmp_path / "frames.png").read_text() == "x"
