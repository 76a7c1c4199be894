"""``muster controller release`` and ``muster controller rollout`` as an operator types them,
on a real SQLite database and key store: what they do, and every bad input refused with its
reason and nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import func, select

from controller.cli.service import controller
from controller.db import make_engine, migrate, session_factory
from controller.db.models import Release, Rollout
from controller.devices.pki_store import ensure_controller_pki
from muster.crypto import generate_device_key, generate_licence_authority_key
from muster.release_artifacts import build_artifact
from tests.unit.conftest import NOW
from tests.unit.test_enrollment import enrol_directly
from tests.unit.test_releases import make_parts


def run(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(controller, [*args, "--data-dir", str(data_dir)])


def counts(data_dir: Path) -> tuple[int, int]:
    engine = make_engine(f"sqlite:///{(data_dir / 'controller.db').resolve()}")
    try:
        with session_factory(engine)() as session:
            releases = session.scalar(select(func.count()).select_from(Release)) or 0
            rollouts = session.scalar(select(func.count()).select_from(Rollout)) or 0
            return releases, rollouts
    finally:
        engine.dispose()


def test_build_add_and_roll_out_in_waves(tmp_path: Path) -> None:
    data = tmp_path / "ctl"
    pki = ensure_controller_pki(data, ["127.0.0.1"], now=NOW)
    url = f"sqlite:///{(data / 'controller.db').resolve()}"
    migrate(url)
    sessions = session_factory(make_engine(url))
    for _ in range(20):
        enrol_directly(sessions, pki, generate_device_key(), now=NOW)
    parts = [str(p) for p in make_parts(tmp_path / "parts", "0.2.0")]
    artifact = tmp_path / "r.tar"
    built = run(
        data,
        "release",
        "build",
        "--version",
        "0.2.0",
        "--profile",
        "simulator",
        "--minimum-version",
        "0.1.0",
        "-o",
        str(artifact),
        *parts,
    )
    assert built.exit_code == 0, built.output
    added = run(data, "release", "add", str(artifact))
    assert added.exit_code == 0 and "已保存版本 0.2.0" in added.output, added.output
    assert "0.2.0\tsimulator" in run(data, "release", "list").output
    again = run(data, "release", "add", str(artifact))
    assert again.exit_code == 2 and "已经存在" in again.output
    created = run(
        data, "rollout", "create", "--version", "0.2.0", "--region", "37", "--waves", "5,50,100"
    )
    assert created.exit_code == 0 and "各波设备数 1、9、10" in created.output, created.output
    status = json.loads(run(data, "rollout", "status", "1", "--json").output)
    assert status["state"] == "running" and [w["devices"] for w in status["waves"]] == [1, 9, 10]
    assert "paused" in run(data, "rollout", "pause", "1", "--reason", "观察").output
    assert run(data, "rollout", "pause", "1").exit_code == 2  # already paused
    assert "running" in run(data, "rollout", "resume", "1").output
    human = run(data, "rollout", "status", "1").output
    assert "第 1 波 (5 %): 1 台" in human
    # Another rollout over the same devices is refused while this one runs.
    assert counts(data) == (1, 1)
    overlapping = run(data, "rollout", "create", "--version", "0.2.0", "--region", "3709")
    assert overlapping.exit_code == 2 and "仍在进行" in overlapping.output
    assert "aborted" in run(data, "rollout", "abort", "1").output
    assert run(data, "rollout", "resume", "1").exit_code == 2
    sessions.kw["bind"].dispose()


def test_bad_input_is_refused_with_its_reason_and_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "ctl"
    ensure_controller_pki(data, ["127.0.0.1"], now=NOW)
    stranger = tmp_path / "stranger.tar"
    build_artifact(
        stranger,
        version="0.2.0",
        profiles=["simulator"],
        minimum_version="0.1.0",
        parts=make_parts(tmp_path / "p", "0.2.0"),
        key=generate_licence_authority_key(),
    )
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"\x00\xff" * 5000)
    for args, says in [
        (("release", "add", str(stranger)), "不受信任的密钥"),
        (("release", "add", str(garbage)), "不是发布包"),
        (("release", "add", str(tmp_path / "nothing.tar")), "找不到发布包"),
        (("rollout", "create", "--version", "9.9.9"), "没有版本 9.9.9"),
        (("rollout", "status", "7"), "没有发布计划 #7"),
        (("rollout", "abort", "7"), "没有发布计划 #7"),
    ]:
        result = run(data, *args)
        assert result.exit_code == 2 and says in result.output, (args, result.output)
    assert counts(data) == (0, 0)
    key = data / "pki" / "release" / "v1.key"
    run(
        data,
        "release",
        "build",
        "--version",
        "0.2.0",
        "--profile",
        "simulator",
        "--minimum-version",
        "0.1.0",
        "-o",
        str(tmp_path / "ok.tar"),
        *[str(p) for p in make_parts(tmp_path / "q", "0.2.0")],
    )
    assert run(data, "release", "add", str(tmp_path / "ok.tar")).exit_code == 0
    for waves, region, says in [
        ("a,b", "", "逗号分隔"),
        ("50,10,100", "", "严格递增"),
        ("10,50", "", "最后为 100"),
        ("100", "12345", "地区代码"),
    ]:
        result = run(
            data, "rollout", "create", "--version", "0.2.0", "--waves", waves, "--region", region
        )
        assert result.exit_code == 2 and says in result.output, (waves, result.output)
    assert counts(data) == (1, 0)
    rotated = run(data, "release", "rotate-key")
    assert rotated.exit_code == 0 and key.exists() and (key.parent / "v2.key").exists()
