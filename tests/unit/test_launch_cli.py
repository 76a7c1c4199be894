"""``muster edge launch``'s bad input: refused before anything starts, with a clear reason, and
nothing written to the state dir. (Real launches: tests/integration/test_launcher.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from muster.cli import cli


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--module", "../evil"], "模块名"),
        (["--module", "os;rm"], "模块名"),
        (["--module", ""], "模块名"),
        (["--max-starts", "0"], "--max-starts"),
        (["--max-starts", "x"], "--max-starts"),
        (["--crash-backoff", "0"], "--crash-backoff"),
        (["--overdue-grace", "-1"], "--overdue-grace"),
    ],
)
def test_bad_launch_options_are_refused(tmp_path: Path, args: list[str], words: str) -> None:
    state = tmp_path / "state"
    result = CliRunner().invoke(cli, ["edge", "launch", "--state-dir", str(state), *args])
    assert result.exit_code == 2 and words in result.output, result.output
    assert not state.exists()
