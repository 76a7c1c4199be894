"""Release artifacts and the release store: what ``muster controller release add`` takes and
what it refuses (another key, a hash that does not match, a downgrade, another profile, a
truncated, huge or malformed artifact), each with its reason and nothing stored."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Release
from controller.devices.pki_store import ControllerPki
from controller.releases.keys import load_release_keys, rotate_release_key
from controller.releases.store import add_release, release_dir
from muster.crypto import generate_licence_authority_key
from muster.crypto.signing import sign_ed25519
from muster.release_artifacts import build_artifact
from muster.releases import (
    ReleaseError,
    accept_endorsed_key,
    check_applicable,
    key_id,
    parse_version,
    verify_manifest,
)
from tests.unit.conftest import NOW


def make_parts(directory: Path, version: str, size: int = 3000) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"muster-{version}-py3-none-any.whl"
    wheel.write_bytes((f"wheel {version}\n".encode() * (size // 10 + 1))[:size])
    start = directory / "start.py"
    start.write_text(f"VERSION = {version!r}\n", encoding="utf-8")
    return [wheel, start]


def artifact(
    tmp: Path,
    key: object,
    version: str = "0.2.0",
    *,
    profiles: tuple[str, ...] = ("simulator",),
    minimum: str = "0.1.0",
) -> Path:
    out = tmp / f"release-{version}.tar"
    build_artifact(
        out,
        version=version,
        profiles=profiles,
        minimum_version=minimum,
        parts=make_parts(tmp / f"parts-{version}", version),
        key=key,  # type: ignore[arg-type]
    )
    return out


def stored(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Release)) or 0


def add(sessions: sessionmaker[Session], pki: ControllerPki, path: Path) -> None:
    with sessions.begin() as session:
        add_release(
            session, pki.directory.parent, path, load_release_keys(pki.directory).trusted(), now=NOW
        )


def refused(sessions: sessionmaker[Session], pki: ControllerPki, path: Path) -> ReleaseError:
    before = stored(sessions)
    with pytest.raises(ReleaseError) as caught:
        add(sessions, pki, path)
    assert stored(sessions) == before
    leftovers = [p.name for p in release_dir(pki.directory.parent).iterdir()]
    assert not [n for n in leftovers if n.startswith(".incoming")], leftovers
    return caught.value


def test_a_release_signed_by_the_release_key_is_stored_with_its_parts(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    ring = load_release_keys(pki.directory)
    add(sessions, pki, artifact(tmp_path, ring.signing.key))
    with sessions() as session:
        release = session.get(Release, "0.2.0")
        assert release is not None
        assert release.profiles == ["simulator"] and release.key_id == ring.signing.key_id
        manifest = verify_manifest(release.manifest, release.signature, ring.trusted())
    for part in manifest.parts:
        assert (release_dir(pki.directory.parent) / "0.2.0" / part.name).stat().st_size == part.size
    # The release key is its own file, apart from the CA and the licence-authority key.
    assert (pki.directory / "release" / "v1.key").stat().st_mode & 0o777 == 0o600
    assert ring.signing.public != pki.licence_key.public_key().public_bytes_raw()


def test_refusals_name_the_reason_and_store_nothing(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    key = load_release_keys(pki.directory).signing.key
    stranger = generate_licence_authority_key()
    assert refused(sessions, pki, artifact(tmp_path / "s", stranger)).reason == "unknown_key"
    # The licence-authority key is not a release key either.
    assert refused(sessions, pki, artifact(tmp_path / "l", pki.licence_key)).reason == (
        "unknown_key"
    )
    other = refused(sessions, pki, artifact(tmp_path / "p", key, profiles=("toaster",)))
    assert other.reason == "wrong_profile" and "toaster" in str(other)
    below = refused(sessions, pki, artifact(tmp_path / "m", key, "0.3.0", minimum="0.4.0"))
    assert below.reason == "below_minimum"
    add(sessions, pki, artifact(tmp_path / "ok", key, "0.5.0"))
    assert refused(sessions, pki, artifact(tmp_path / "d", key, "0.4.0")).reason == "downgrade"
    assert refused(sessions, pki, artifact(tmp_path / "e", key, "0.5.0")).reason == "exists"


def _rewrite(source: Path, target: Path, change: dict[str, bytes | None]) -> Path:
    """Copy a tar, replacing (or, with None, dropping) the named members."""
    with tarfile.open(source) as tar, tarfile.open(target, "w") as out:
        for member in tar:
            if member.name in change:
                data = change[member.name]
                if data is None:
                    continue
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))
            else:
                out.addfile(member, tar.extractfile(member))
    return target


def test_a_part_that_does_not_match_its_hash_is_refused(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    key = load_release_keys(pki.directory).signing.key
    good = artifact(tmp_path, key)
    name = "parts/start.py"
    swapped = _rewrite(good, tmp_path / "swapped.tar", {name: b"VERSION = '6.6.6-evil'\n"})
    assert refused(sessions, pki, swapped).reason == "size_mismatch"
    same_size = _rewrite(good, tmp_path / "same.tar", {name: b"VERSION = '0.2.x'\n"})
    assert refused(sessions, pki, same_size).reason == "hash_mismatch"
    missing = _rewrite(good, tmp_path / "missing.tar", {name: None})
    assert refused(sessions, pki, missing).reason == "missing_part"
    extra = _rewrite(good, tmp_path / "extra.tar", {})
    with tarfile.open(extra, "a") as tar:
        info = tarfile.TarInfo("parts/evil.sh")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"rm\n"))
    assert refused(sessions, pki, extra).reason == "bad_artifact"


def test_a_manifest_edited_after_signing_is_refused(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    key = load_release_keys(pki.directory).signing.key
    good = artifact(tmp_path, key)
    with tarfile.open(good) as tar:
        fh = tar.extractfile("manifest.json")
        assert fh is not None
        doc = json.loads(fh.read())
    doc["profiles"] = ["simulator", "fixed-kiosk"]
    forged = _rewrite(good, tmp_path / "forged.tar", {"manifest.json": json.dumps(doc).encode()})
    assert refused(sessions, pki, forged).reason == "bad_signature"


def test_truncated_huge_and_malformed_artifacts_are_refused(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    key = load_release_keys(pki.directory).signing.key
    good = artifact(tmp_path, key).read_bytes()
    for cut in (0, 10, 600, 2000, len(good) // 2):
        path = tmp_path / f"cut-{cut}.tar"
        path.write_bytes(good[:cut])
        assert refused(sessions, pki, path).reason in {"bad_artifact", "missing_part"}
    huge = {"manifest.json": b" " * (70 * 1024)}
    big = _rewrite(artifact(tmp_path / "b", key), tmp_path / "big.tar", huge)
    assert refused(sessions, pki, big).reason == "bad_artifact"
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    assert refused(sessions, pki, link).reason == "bad_artifact"
    assert refused(sessions, pki, tmp_path / "absent.tar").reason == "bad_artifact"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@hsettings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doc=st.fixed_dictionaries(
        {"format": st.just("muster-release/1")},
        optional={
            "version": _JSON,
            "profiles": _JSON,
            "minimum_version": _JSON,
            "key_id": _JSON,
            "parts": _JSON,
        },
    )
    | _JSON,
)
def test_any_malformed_signed_manifest_is_refused_with_a_release_error(doc: object) -> None:
    """Even signed by the trusted key, a manifest of the wrong shape is a ReleaseError, never
    another exception."""
    key = generate_licence_authority_key()
    raw = json.dumps(doc).encode()
    with pytest.raises(ReleaseError):
        verify_manifest(
            raw, sign_ed25519(key, raw), {key_id(key): key.public_key().public_bytes_raw()}
        )


def test_device_side_applicability_and_versions() -> None:
    key = generate_licence_authority_key()
    trusted = {key_id(key): key.public_key().public_bytes_raw()}
    doc = {
        "format": "muster-release/1",
        "version": "1.4",
        "profiles": ["simulator"],
        "minimum_version": "1.2.0",
        "key_id": key_id(key),
        "parts": [{"name": "a", "size": 1, "sha256": "0" * 64}],
    }
    raw = json.dumps(doc).encode()
    manifest = verify_manifest(raw, sign_ed25519(key, raw), trusted)
    check_applicable(manifest, profile="simulator", current_version="1.3.9")
    for profile, current, reason in [
        ("fixed-kiosk", "1.3", "wrong_profile"),
        ("simulator", "1.1", "below_minimum"),
        ("simulator", "1.4.0", "downgrade"),
        ("simulator", "2.0", "downgrade"),
    ]:
        with pytest.raises(ReleaseError) as caught:
            check_applicable(manifest, profile=profile, current_version=current)
        assert caught.value.reason == reason
    assert parse_version("1.4") == parse_version("1.4.0") < parse_version("1.10")
    for bad in ("", "v1", "1..2", "1.2.3.4.5", "１.2"):
        with pytest.raises(ReleaseError):
            parse_version(bad)


def test_a_rotated_release_key_is_endorsed_by_the_one_before(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    first = load_release_keys(pki.directory).signing
    new = rotate_release_key(pki.directory)
    assert new.version == 2 and new.endorsed_by == first.key_id
    trusted = {first.key_id: first.public}
    assert accept_endorsed_key(trusted, new.public, new.endorsed_by, new.endorsement) == new.key_id
    with pytest.raises(ReleaseError):
        accept_endorsed_key(trusted, new.public, first.key_id, b"\0" * 64)
    # Releases signed by either key are accepted by the store.
    add(sessions, pki, artifact(tmp_path / "1", first.key, "0.2.0"))
    add(sessions, pki, artifact(tmp_path / "2", new.key, "0.3.0"))
    assert stored(sessions) == 2
