"""The README's "Running the parts yourself" blocks, pasted in order into one shell in a fresh
directory (the clone's scripts, examples and profiles, its .venv), must work: each command
succeeds, the device enrols and its console answers. Only the ports are moved to free ones, so
the test runs beside anything else."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from tests.fixtures.components import free_port, require

ROOT = Path(__file__).resolve().parents[2]


def section_blocks(readme: str) -> list[str]:
    """The ```sh blocks between "## Running the parts yourself" and its first subsection."""
    start = readme.index("## Running the parts yourself\n")
    end = readme.index("\n### ", start)
    return re.findall(r"```sh\n(.*?)```", readme[start:end], flags=re.S)


def test_readme_blocks_run_in_order(tmp_path: Path) -> None:
    require("mosquitto", "to run the README's broker")
    blocks = section_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) == 4, "the section's blocks changed: update this test's checks"
    ports = {p: str(free_port()) for p in ("8883", "8884", "7443", "7000", "8700")}
    for name in ("scripts", "examples", "firmware_profiles"):
        shutil.copytree(ROOT / name, tmp_path / name)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")

    def moved(text: str) -> str:
        for old, new in ports.items():
            text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
        return text.replace(
            "bash scripts/broker.sh",
            f"bash scripts/broker.sh --device-port {ports['8883']} --centre-port {ports['8884']}",
        )

    profile = tmp_path / "examples" / "device-sim.yaml"
    profile.write_text(moved(profile.read_text()).replace("port: 8700", f"port: {ports['8700']}"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MUSTER_")},
        "MUSTER_CONTROLLER_ENROL_PORT": ports["7443"],
        "MUSTER_CONTROLLER_DATA_PORT": str(free_port()),
        "MUSTER_CONTROLLER_ADMIN_PORT": str(free_port()),
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
    }
    *setup, teardown = blocks
    # One shell, as a user pastes: each command must succeed, in order.
    script = "set -e\n" + "\n".join(moved(block) for block in setup)
    script += f"\nfor _ in $(seq 1 150); do curl -sf -o /dev/null http://127.0.0.1:{ports['8700']}/ && break; sleep 0.2; done\n"
    script += f"curl -sf -o /dev/null http://127.0.0.1:{ports['8700']}/\n"
    script += "jobs -l > jobs.txt\n" + moved(teardown)
    shell = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )
    try:
        output, _ = shell.communicate(timeout=240)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
        pid_file = tmp_path / "var" / "broker" / "mosquitto.pid"
        if pid_file.exists():
            with_pid = pid_file.read_text().strip()
            if with_pid.isdigit():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(with_pid), signal.SIGTERM)
    logs = "\n".join(
        f"--- {name}\n{(tmp_path / name).read_text(errors='replace')[-2000:]}"
        for name in ("controller.log", "edge.log", "reader.log")
        if (tmp_path / name).exists()
    )
    assert shell.returncode == 0, output + logs
    assert "已写入 300 人" in output
    assert (tmp_path / "var" / "edge" / "identity").is_dir(), logs
    jobs = (tmp_path / "jobs.txt").read_text()
    assert jobs.count("Running") == 3, jobs
