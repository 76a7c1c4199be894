"""The chaos run (``bash scripts/chaos.sh``) refuses bad options before it starts a single process, naming the
option and what it takes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.chaos.cli import chaos


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--faults", "0"], "--faults"),
        (["--faults", "many"], "--faults"),
        (["--devices", "1"], "--devices"),
        (["--controllers", "1"], "--controllers"),
        (["--gap", "0"], "--gap"),
        (["--rate", "-5"], "--rate"),
        (["--records", "-1"], "--records"),
        (["--recovery-timeout", "1"], "--recovery-timeout"),
        (["--seed", "x"], "--seed"),
        (["--weight", "kill_router=1"], "--weight"),
        (["--weight", "kill_device"], "--weight"),
        (["--weight", "kill_device=lots"], "--weight"),
        (["--weight", "kill_device=-1"], "--weight"),
        (["--weight", "kill_device=nan"], "--weight"),
    ],
)
def test_bad_options_are_refused_by_name(args: list[str], named: str, tmp_path: Path) -> None:
    """Each bad value fails with usage status 2 and names its option; nothing is created."""
    out = tmp_path / "run"
    result = CliRunner().invoke(chaos, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert not out.exists()


def test_a_used_output_directory_is_refused(tmp_path: Path) -> None:
    """A run never mixes its logs and summary with an earlier run's."""
    (tmp_path / "faults.jsonl").write_text("{}\n")
    result = CliRunner().invoke(chaos, ["--out", str(tmp_path)])
    assert result.exit_code == 2 and "--out" in result.output
    assert (tmp_path / "faults.jsonl").read_text() == "{}\n"


def test_help_names_every_fault_kind_and_the_dead_device() -> None:
    """The help says what the run breaks and that the last device is left dead."""
    result = CliRunner().invoke(chaos, ["--help"])
    assert result.exit_code == 0
    assert "kill -9" in result.output and "left dead" in result.output
