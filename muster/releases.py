"""The software release artifact and its one verification rule, used by the controller when a
release is added and by the device before anything of an update changes.

An artifact (muster/release_artifacts.py) is an uncompressed tar holding exactly
``manifest.json``, ``manifest.sig`` and one ``parts/<name>`` per part the manifest lists. The
manifest (JSON, UTF-8)::

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
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    "check_applicable",
    "endorse_key",
    "key_id",
    "parse_manifest",
    "parse_version",
    "public_key_bytes",
    "public_key_from_bytes",
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


def parse_manifest(raw: bytes) -> Manifest:
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
    manifest = parse_manifest(raw)
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
