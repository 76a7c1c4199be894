"""The software release artifact and its one verification rule, used by the controller when a
release is added and by the device before anything of an update changes.

An artifact is an uncompressed tar holding exactly ``manifest.json``, ``manifest.sig`` and one
``parts/<name>`` per part the manifest lists. The manifest (JSON, UTF-8)::

    {"format": "muster-release/1", "version": "1.4.0", "profiles": ["simulator"],
     "minimum_version": "1.2.0", "key_id": "…",
     "parts": [{"name": "muster-1.4.0-py3-none-any.whl", "size": 123, "sha256": "…"}]}

``manifest.sig`` is the Ed25519 signature (64 bytes) of the manifest's exact bytes by the release
key ``key_id`` names (the first 16 hex digits of the SHA-256 of its raw public key). The release
key is kept apart from the CA and the licence-authority key; a new release key is trusted when an
already trusted one endorses it (:func:`endorse_key` / :func:`accept_endorsed_key`).

Every refusal is a :class:`ReleaseError` whose ``reason`` is a stable code and whose message says
what was wrong in Simplified Chinese with the English beside it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from muster.crypto.keys import LicenceAuthorityKey, LicenceAuthorityPublicKey
from muster.crypto.signing import sign_ed25519, verify_ed25519
from muster.errors import ConfigError, SignatureError

__all__ = [
    "FORMAT",
    "MAX_MANIFEST_BYTES",
    "MAX_PARTS",
    "MAX_RELEASE_BYTES",
    "Manifest",
    "Part",
    "ReleaseError",
    "accept_endorsed_key",
    "build_artifact",
    "check_applicable",
    "endorse_key",
    "key_id",
    "parse_version",
    "public_key_bytes",
    "public_key_from_bytes",
    "read_artifact",
    "sha256_file",
    "verify_manifest",
    "verify_part_file",
]

FORMAT = "muster-release/1"
MAX_MANIFEST_BYTES = 64 * 1024
MAX_PARTS = 64
# A daemon release with its locked wheels is tens of MB; anything far larger is not ours.
MAX_RELEASE_BYTES = 512 * 1024 * 1024
_ENDORSEMENT = b"muster-release-key/1\n"
_VERSION = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,6}){0,3}$")
_PART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_PROFILE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ReleaseError(ConfigError):
    """A release artifact, manifest or download refused; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_version(text: str) -> tuple[int, ...]:
    """``1.4.0`` → ``(1, 4, 0)``; trailing zeros do not count (``1.4`` == ``1.4.0``)."""
    if not isinstance(text, str) or not _VERSION.match(text):
        raise ReleaseError(
            "bad_version",
            f"版本号 {text!r} 格式不对 (version must be dotted numbers such as 1.4.0)",
        )
    parts = [int(p) for p in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def public_key_bytes(key: LicenceAuthorityKey | LicenceAuthorityPublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_bytes(raw: bytes) -> LicenceAuthorityPublicKey:
    if len(raw) != 32:
        raise ReleaseError("bad_key", "发布公钥长度不对 (a release public key is 32 bytes)")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def key_id(key: LicenceAuthorityKey | LicenceAuthorityPublicKey | bytes) -> str:
    raw = key if isinstance(key, bytes) else public_key_bytes(key)
    return hashlib.sha256(raw).hexdigest()[:16]


def endorse_key(old: LicenceAuthorityKey, new_public: bytes) -> bytes:
    """The old release key's signature over a new one: how a rotation reaches the devices."""
    return sign_ed25519(old, _ENDORSEMENT + new_public)


def accept_endorsed_key(
    trusted: Mapping[str, bytes], new_public: bytes, endorser: str, endorsement: bytes
) -> str:
    """Check that trusted key ``endorser`` endorsed ``new_public``; return the new key's id."""
    if endorser not in trusted:
        raise ReleaseError(
            "unknown_key", f"发布密钥 {endorser} 不受信任 (endorsing key {endorser} is not trusted)"
        )
    try:
        verify_ed25519(
            public_key_from_bytes(trusted[endorser]), _ENDORSEMENT + new_public, endorsement
        )
    except SignatureError:
        raise ReleaseError(
            "bad_signature",
            "新发布密钥的背书签名无效 (the new release key's endorsement is forged)",
        ) from None
    return key_id(new_public)


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    version: str
    profiles: tuple[str, ...]
    minimum_version: str
    key_id: str
    parts: tuple[Part, ...]
    raw: bytes  # the exact signed bytes

    @property
    def total_size(self) -> int:
        return sum(p.size for p in self.parts)

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise ReleaseError("unknown_part", f"版本 {self.version} 没有部件 {name!r} (no such part)")


def _bad(message: str) -> ReleaseError:
    return ReleaseError("bad_manifest", f"发布清单无效: {message} (the manifest is malformed)")


def _parse_manifest(raw: bytes) -> Manifest:
    if len(raw) > MAX_MANIFEST_BYTES:
        raise _bad(f"超过 {MAX_MANIFEST_BYTES} 字节")
    try:
        doc: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _bad(f"不是 UTF-8 JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise _bad("顶层不是对象")
    if doc.get("format") != FORMAT:
        raise _bad(f"format 应为 {FORMAT}")
    version, minimum = doc.get("version"), doc.get("minimum_version", "0")
    if not isinstance(version, str) or not isinstance(minimum, str):
        raise _bad("version 与 minimum_version 应为字符串")
    parse_version(version)
    parse_version(minimum)
    profiles = doc.get("profiles")
    if (
        not isinstance(profiles, list)
        or not profiles
        or len(profiles) > 64
        or not all(isinstance(p, str) and _PROFILE.match(p) for p in profiles)
    ):
        raise _bad("profiles 应为设备型号名称的非空列表")
    kid = doc.get("key_id")
    if not isinstance(kid, str) or not re.fullmatch(r"[0-9a-f]{16}", kid):
        raise _bad("key_id 应为 16 位十六进制")
    raw_parts = doc.get("parts")
    if not isinstance(raw_parts, list) or not 1 <= len(raw_parts) <= MAX_PARTS:
        raise _bad(f"parts 应有 1 到 {MAX_PARTS} 个部件")
    parts: list[Part] = []
    for entry in raw_parts:
        if not isinstance(entry, dict):
            raise _bad("部件不是对象")
        name, size, digest = entry.get("name"), entry.get("size"), entry.get("sha256")
        if not isinstance(name, str) or not _PART_NAME.match(name) or name.startswith("."):
            raise _bad(f"部件名 {name!r} 不合规")
        if not isinstance(size, int) or isinstance(size, bool) or not size >= 0:
            raise _bad(f"部件 {name} 的 size 不是非负整数")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise _bad(f"部件 {name} 的 sha256 不是 64 位小写十六进制")
        parts.append(Part(name, size, digest))
    if len({p.name for p in parts}) != len(parts):
        raise _bad("部件名重复")
    if sum(p.size for p in parts) > MAX_RELEASE_BYTES:
        raise _bad(f"部件总大小超过 {MAX_RELEASE_BYTES} 字节")
    return Manifest(version, tuple(profiles), minimum, kid, tuple(parts), raw)


def verify_manifest(raw: bytes, signature: bytes, trusted: Mapping[str, bytes]) -> Manifest:
    """The manifest, once its signature by a trusted release key verifies (``trusted``: key id →
    raw public key). Nothing of the manifest is believed before that."""
    manifest = _parse_manifest(raw)
    public = trusted.get(manifest.key_id)
    if public is None or key_id(public) != manifest.key_id:
        raise ReleaseError(
            "unknown_key",
            f"发布由不受信任的密钥 {manifest.key_id} 签名，已拒绝 "
            "(signed by a key that is not a trusted release key)",
        )
    try:
        verify_ed25519(public_key_from_bytes(public), raw, signature)
    except SignatureError:
        raise ReleaseError(
            "bad_signature",
            "发布清单签名无效，可能被篡改或由其他密钥签名 (the manifest's signature does not verify)",
        ) from None
    return manifest


def check_applicable(manifest: Manifest, *, profile: str, current_version: str) -> None:
    """Refuse a release a device of ``profile`` running ``current_version`` must not take."""
    if profile not in manifest.profiles:
        raise ReleaseError(
            "wrong_profile",
            f"版本 {manifest.version} 适用于 {', '.join(manifest.profiles)}，不适用于型号 "
            f"{profile} (the artifact is for another profile)",
        )
    current = parse_version(current_version)
    if current < parse_version(manifest.minimum_version):
        raise ReleaseError(
            "below_minimum",
            f"当前版本 {current_version} 低于该发布要求的最低版本 {manifest.minimum_version} "
            "(install the intermediate release first)",
        )
    if parse_version(manifest.version) <= current:
        raise ReleaseError(
            "downgrade",
            f"版本 {manifest.version} 不高于当前版本 {current_version}，不降级 "
            "(a release must be newer than the running version)",
        )


def sha256_file(path: Path, limit: int | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        remaining = limit
        while remaining is None or remaining > 0:
            block = fh.read(1 << 20 if remaining is None else min(1 << 20, remaining))
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
    return digest.hexdigest()


def verify_part_file(part: Part, path: Path) -> None:
    """The file holds exactly the part the manifest names: its size and its SHA-256."""
    size = path.stat().st_size if path.exists() else -1
    if size != part.size:
        raise ReleaseError(
            "size_mismatch",
            f"部件 {part.name} 大小 {max(size, 0)} 字节，清单为 {part.size} 字节 "
            "(truncated or oversized part)",
        )
    if sha256_file(path) != part.sha256:
        raise ReleaseError(
            "hash_mismatch",
            f"部件 {part.name} 的 SHA-256 与清单不符 (the part's content does not match the manifest)",
        )


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
    manifest = _parse_manifest(raw)
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
