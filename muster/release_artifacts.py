"""The release artifact on disk: an uncompressed tar of ``manifest.json``, ``manifest.sig`` and
``parts/<name>`` for each part the manifest lists (the rule of what a manifest is and who may
sign it is muster/releases.py). Building signs with the release key; reading verifies the
manifest first and unpacks only the parts it lists, each checked by size and SHA-256, refusing
links, absolute or ``..`` paths, duplicates, extra entries and truncation."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from muster.crypto.keys import LicenceAuthorityKey
from muster.crypto.signing import sign_ed25519
from muster.releases import (
    FORMAT,
    MAX_MANIFEST_BYTES,
    MAX_PARTS,
    Manifest,
    ReleaseError,
    key_id,
    parse_manifest,
    sha256_file,
    verify_manifest,
    verify_part_file,
)

__all__ = ["build_artifact", "read_artifact"]


def build_artifact(
    out: Path,
    *,
    version: str,
    profiles: Iterable[str],
    minimum_version: str,
    parts: Iterable[Path],
    key: LicenceAuthorityKey,
) -> Manifest:
    """Sign a release made of the files ``parts`` and write it to ``out`` (a tar)."""
    files = list(parts)
    doc = {
        "format": FORMAT,
        "version": version,
        "profiles": sorted(set(profiles)),
        "minimum_version": minimum_version,
        "key_id": key_id(key),
        "parts": [
            {"name": f.name, "size": f.stat().st_size, "sha256": sha256_file(f)} for f in files
        ],
    }
    raw = json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=1).encode()
    manifest = parse_manifest(raw)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("manifest.json", raw), ("manifest.sig", sign_ed25519(key, raw))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for f in files:
            tar.add(f, arcname=f"parts/{f.name}", recursive=False)
    tmp.replace(out)
    return manifest


def read_artifact(
    path: Path, trusted: Mapping[str, bytes], unpack_to: Path
) -> tuple[Manifest, bytes]:
    """Verify the artifact at ``path`` and unpack its parts into the empty directory
    ``unpack_to``. Returns the manifest and its signature. Raises :class:`ReleaseError` on
    anything wrong; what was unpacked before the refusal is the caller's to discard."""
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError) as exc:
        raise ReleaseError(
            "bad_artifact", f"{path.name} 不是发布包 (not a release tar: {type(exc).__name__})"
        ) from None
    with tar:
        try:
            members = {m.name: m for m in _members(tar)}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ReleaseError(
                "bad_artifact", f"{path.name} 已损坏或被截断 (truncated tar: {type(exc).__name__})"
            ) from None
        for required in ("manifest.json", "manifest.sig"):
            if required not in members:
                raise ReleaseError("bad_artifact", f"发布包缺少 {required} (missing {required})")
        raw = _member_bytes(tar, members["manifest.json"], MAX_MANIFEST_BYTES)
        signature = _member_bytes(tar, members["manifest.sig"], 64)
        manifest = verify_manifest(raw, signature, trusted)
        expected = {f"parts/{p.name}" for p in manifest.parts} | {"manifest.json", "manifest.sig"}
        extra = sorted(set(members) - expected)
        if extra:
            raise ReleaseError(
                "bad_artifact", f"发布包含清单未列出的文件 {extra[:3]} (files the manifest omits)"
            )
        unpack_to.mkdir(parents=True, exist_ok=True)
        for part in manifest.parts:
            member = members.get(f"parts/{part.name}")
            if member is None:
                raise ReleaseError(
                    "missing_part", f"发布包缺少部件 {part.name} (the artifact lacks a part)"
                )
            if member.size != part.size:
                raise ReleaseError(
                    "size_mismatch",
                    f"部件 {part.name} 大小 {member.size} 字节，清单为 {part.size} 字节",
                )
            _copy_member(tar, member, unpack_to / part.name)
            verify_part_file(part, unpack_to / part.name)
    return manifest, signature


def _members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    found: list[tarfile.TarInfo] = []
    for member in tar:
        if not member.isreg() or member.name.startswith("/") or ".." in member.name.split("/"):
            raise ReleaseError(
                "bad_artifact", f"发布包含不允许的条目 {member.name!r} (only regular files)"
            )
        if member.name in {m.name for m in found}:
            raise ReleaseError("bad_artifact", f"发布包中 {member.name} 重复 (duplicate entry)")
        if len(found) > MAX_PARTS + 2:
            raise ReleaseError("bad_artifact", "发布包条目过多 (too many entries)")
        found.append(member)
    return found


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise ReleaseError(
            "bad_artifact", f"{member.name} 超过 {limit} 字节 ({member.name} is too large)"
        )
    fh = tar.extractfile(member)
    assert fh is not None  # regular file
    data = fh.read(limit + 1)
    if len(data) != member.size:
        raise ReleaseError("bad_artifact", f"{member.name} 被截断 (truncated)")
    return data


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source: IO[bytes] | None = tar.extractfile(member)
    assert source is not None
    try:
        with target.open("wb") as out:
            while block := source.read(1 << 20):
                out.write(block)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ReleaseError(
            "bad_artifact", f"部件 {member.name} 读取失败，发布包被截断 ({type(exc).__name__})"
        ) from None
