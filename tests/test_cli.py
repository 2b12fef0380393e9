import json
import subprocess
import sys

import pytest

from univigu_hf.cli import main


def test_help_lists_the_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "convert" in out and "demo" in out


def test_console_script_version():
    result = subprocess.run(
        [sys.executable, "-c", "from univigu_hf.cli import main; main(['--version'])"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "univigu_hf" in result.stdout


def test_demo_runs_all_modes_and_checks_prior_preservation(capsys):
    assert main(["demo", "--steps", "3", "--text-length", "6"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[: out.rindex("}") + 1])
    assert report["prior_preservation_max_abs_diff"] <= 1e-5
    assert len(report["caption_token_ids"].split()) == 6
    assert report["univigu_parameters"] > report["wan_parameters"]


@pytest.mark.parametrize("flag", ["--steps", "--text-length", "--vocab-size"])
def test_demo_rejects_non_positive_sizes(flag, capsys):
    with pytest.raises(SystemExit):
        main(["demo", flag, "0"])
    assert f"{flag} must be a positive integer, got 0" in capsys.readouterr().err


def test_convert_subcommand_reports_missing_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["convert"])
    assert "univigu convert" in capsys.readouterr().err
