"""The release store: ``muster controller release add FILE`` verifies an artifact against the
release keys and keeps it, its parts under ``DATA_DIR/releases/<version>/`` and its signed
manifest in the ``releases`` table. A refused artifact leaves nothing behind.

The parts are unpacked into a hidden ``.incoming-*`` directory first and renamed into place
only once every part verified; the row is written in the same transaction that the caller
commits, and a directory without its row (a crash between) is replaced on the next add."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Release
from muster.profiles import PROFILE_DIR
from muster.release_artifacts import read_artifact
from muster.releases import Manifest, ReleaseError, parse_version

__all__ = ["StoredRelease", "add_release", "known_profiles", "part_path", "release_dir"]


@dataclass(frozen=True, slots=True)
class StoredRelease:
    manifest: Manifest
    directory: Path


def release_dir(data_dir: Path) -> Path:
    return data_dir / "releases"


def part_path(data_dir: Path, version: str, part: str) -> Path:
    """Where a stored part is; ``part`` is a name from a verified manifest."""
    return release_dir(data_dir) / version / part


def known_profiles() -> set[str]:
    return {p.stem for p in PROFILE_DIR.glob("*.yaml")}


def add_release(
    session: Session,
    data_dir: Path,
    artifact: Path,
    trusted: dict[str, bytes],
    *,
    now: datetime,
    profiles: set[str] | None = None,
) -> StoredRelease:
    """Verify ``artifact`` and store it. Refused (nothing stored): a key that is not a release
    key of ours, a part whose size or hash differs, a version below its own minimum or not newer
    than a release already stored, a profile no device model has."""
    if not artifact.is_file():
        raise ReleaseError("bad_artifact", f"找不到发布包 {artifact} (no such file)")
    root = release_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
    try:
        manifest, signature = read_artifact(artifact, trusted, incoming)
        _check_against_store(session, manifest, profiles or known_profiles())
        target = root / manifest.version
        if target.exists():  # left by a crash before its row was committed
            shutil.rmtree(target)
        incoming.rename(target)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    session.add(
        Release(
            version=manifest.version,
            profiles=list(manifest.profiles),
            minimum_version=manifest.minimum_version,
            key_id=manifest.key_id,
            manifest=manifest.raw,
            signature=signature,
            total_size=manifest.total_size,
            added_at=now,
        )
    )
    session.flush()
    return StoredRelease(manifest, target)


def _check_against_store(session: Session, manifest: Manifest, profiles: set[str]) -> None:
    unknown = sorted(set(manifest.profiles) - profiles)
    if unknown:
        raise ReleaseError(
            "wrong_profile",
            f"发布针对未知的设备型号 {', '.join(unknown)}；已知型号: {', '.join(sorted(profiles))} "
            "(the artifact is for a profile this centre has no device of)",
        )
    if parse_version(manifest.version) < parse_version(manifest.minimum_version):
        raise ReleaseError(
            "below_minimum",
            f"版本 {manifest.version} 低于它自己要求的最低版本 {manifest.minimum_version} "
            "(a release below its own minimum can never be installed)",
        )
    stored = list(session.scalars(select(Release.version)))
    if manifest.version in stored:
        raise ReleaseError(
            "exists", f"版本 {manifest.version} 已经存在 (this release is already stored)"
        )
    newer = [v for v in stored if parse_version(v) >= parse_version(manifest.version)]
    if newer:
        raise ReleaseError(
            "downgrade",
            f"已有更新的版本 {max(newer, key=parse_version)}，不接受旧版本 {manifest.version} "
            "(releases only move forward; build a new version number)",
        )
