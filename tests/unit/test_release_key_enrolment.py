"""The first release key comes with enrolment: the centre's answer names its release keys, the
device stores them with its identity (``identity/release-keys.json``) and from then on trusts no
key first seen in an update offer unless a pinned one endorsed it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.devices.pki_store import ControllerPki
from controller.releases.keys import load_release_keys, rotate_release_key
from edge.enrolment import release_keys_json
from edge.updates.slots import RELEASE_KEYS_FILE
from edge.updates.updater import Updater
from muster.clock import VirtualClock
from muster.crypto import generate_device_key, generate_licence_authority_key
from muster.errors import EnrollmentError
from muster.releases import endorse_key, key_id, public_key_bytes
from muster.v1 import enrollment_pb2, updates_pb2
from tests.unit.conftest import NOW
from tests.unit.test_enrollment import enrol_directly


def test_the_enrolment_answer_names_every_release_key_of_the_centre(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    rotate_release_key(pki.directory)
    response = enrol_directly(sessions, pki, generate_device_key())
    ring = load_release_keys(pki.directory)
    assert [(k.key_id, k.public_key) for k in response.release_keys] == [
        (e.key_id, e.public) for e in ring.entries
    ]
    stored = json.loads(release_keys_json(response))
    assert stored == {e.key_id: e.public.hex() for e in ring.entries}


@pytest.mark.parametrize(
    "entry",
    [
        enrollment_pb2.ReleaseKeyEntry(key_id="0" * 16, public_key=b"\x01" * 32),  # wrong id
        enrollment_pb2.ReleaseKeyEntry(key_id=key_id(b"\x01" * 31), public_key=b"\x01" * 31),
        enrollment_pb2.ReleaseKeyEntry(key_id="", public_key=b""),
    ],
)
def test_a_malformed_release_key_in_the_answer_is_refused(
    entry: enrollment_pb2.ReleaseKeyEntry,
) -> None:
    response = enrollment_pb2.EnrollResponse(release_keys=[entry])
    with pytest.raises(EnrollmentError, match="发布公钥"):
        release_keys_json(response)


def _updater(state_dir: Path) -> Updater:
    async def restart() -> None:
        pass

    return Updater(
        state_dir,
        profile="simulator",
        factory_version="0.1.0",
        channel=lambda: None,  # type: ignore[arg-type, return-value]
        clock=VirtualClock(NOW),
        restart=restart,
    )


def test_a_device_with_pinned_keys_trusts_no_key_first_seen_in_an_offer(tmp_path: Path) -> None:
    pinned = generate_licence_authority_key()
    (tmp_path / "identity").mkdir()
    (tmp_path / "identity" / RELEASE_KEYS_FILE).write_text(
        json.dumps({key_id(pinned): public_key_bytes(pinned).hex()})
    )
    updater = _updater(tmp_path)
    stranger = public_key_bytes(generate_licence_authority_key())
    offered = [updates_pb2.ReleaseKey(key_id=key_id(stranger), public_key=stranger)]
    assert set(updater._learn_keys(offered)) == {key_id(pinned)}
    # A successor the pinned key endorsed is learned, and kept beside the pinned one.
    successor = public_key_bytes(generate_licence_authority_key())
    endorsed = updates_pb2.ReleaseKey(
        key_id=key_id(successor),
        public_key=successor,
        endorsed_by=key_id(pinned),
        endorsement=endorse_key(pinned, successor),
    )
    forged = updates_pb2.ReleaseKey(
        key_id=key_id(stranger),
        public_key=stranger,
        endorsed_by=key_id(pinned),
        endorsement=b"\x00" * 64,
    )
    assert set(updater._learn_keys([forged, endorsed])) == {key_id(pinned), key_id(successor)}
    assert set(_updater(tmp_path).trusted_keys()) == {key_id(pinned), key_id(successor)}


@pytest.mark.parametrize("junk", [b"not json", b"[1, 2]", b'{"abc": "zz"}', b'{"00": "00"}'])
def test_unreadable_or_forged_key_files_are_trusted_for_nothing(
    tmp_path: Path, junk: bytes
) -> None:
    (tmp_path / "identity").mkdir()
    (tmp_path / "identity" / RELEASE_KEYS_FILE).write_bytes(junk)
    assert _updater(tmp_path).trusted_keys() == {}
