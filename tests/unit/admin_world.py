"""Two neighbouring counties of Tai'an (泰山区 370902 and 岱岳区 370911) with a township, a
device, a command, a record, people and an enrolment code each, and one admin per role, for the
scope and review tests. Rows go in through the models; admins through ``add_admin``."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import add_admin, hash_admin_password, issue_token
from controller.db.models import (
    Attachment,
    Command,
    Device,
    EnrollmentCode,
    PersonRow,
    Record,
    TownshipSlice,
)
from edge.simulators.collector import simulated_record
from muster.crypto import UploadPrivateKey, generate_upload_key, seal_attachment
from muster.records import Person, describe_attachment
from muster.synthetic import person as synthetic_person

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PASSWORD = "Passw0rd-for-tests"
HOME, NEIGHBOUR = "370902", "370911"
TOWNSHIP = {HOME: "370902001000", NEIGHBOUR: "370911001000"}

# role -> region prefix, all placed over HOME; "neighbour" is the county admin next door.
ADMINS: dict[str, tuple[str, str]] = {
    "ministry": ("ministry", ""),
    "province": ("province", "37"),
    "city": ("city", "3709"),
    "county": ("county", HOME),
    "neighbour": ("county", NEIGHBOUR),
    "township": ("township", HOME + "001"),
    "auditor": ("auditor", HOME),
    "technician": ("technician", HOME),
}


@dataclass
class County:
    township: str
    device_id: str
    command_id: str
    record_ids: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)


@dataclass
class World:
    counties: dict[str, County]
    tokens: dict[str, str]


def _people_and_records(
    session: Session, township: str, device_id: str, count: int, collected: int, seed: int
) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    people, records = [], []
    for i in range(count):
        p = synthetic_person(rng, township[:6])
        details = {
            "name": p.name,
            "id_number": p.id_number,
            "sex": p.sex,
            "ethnicity": "01",
            "birth_date": p.birth_date.isoformat(),
            "category": "retired_soldier",
            "relation": "",
            "political_status": "13",
            "enlistment_date": "",
            "discharge_date": "",
            "rank_class": "",
            "service_unit": "陆军",
            "service_number": "",
            "household_registration": "",
        }
        session.add(
            PersonRow(
                township_code=township,
                id_number=p.id_number,
                name=p.name,
                category="retired_soldier",
                details=details,
                content_hash=f"{seed}-{i}",
                version=1,
                removed=False,
                updated_at=NOW,
            )
        )
        people.append(p.id_number)
        if i >= collected:
            continue
        payload = simulated_record(random.Random(seed * 1000 + i), township, NOW).model_copy(
            update={
                "person": Person(
                    name=p.name if i else p.name + "某",  # the first one was mistyped
                    id_number=p.id_number,
                    sex=p.sex,
                    birth_date=p.birth_date,
                ),
            }
        )
        session.add(
            Record(
                record_id=payload.record_id,
                device_id=device_id,
                content_hash=f"hash-{payload.record_id}",
                schema_version=f"{payload.category.value}/{payload.form_version}",
                key_version=1,
                township_code=township,
                category=payload.category.value,
                sealed_at=NOW,
                received_at=NOW + timedelta(minutes=i),
                payload=payload.model_dump(mode="json"),
                id_number=p.id_number,
            )
        )
        records.append(payload.record_id)
    session.add(TownshipSlice(township_code=township, version=1, people=count, updated_at=NOW))
    return people, records


def build_world(sessions: sessionmaker[Session], *, people: int = 4, collected: int = 3) -> World:
    counties: dict[str, County] = {}
    hashed = hash_admin_password(PASSWORD)
    with sessions.begin() as session:
        for n, (county, township) in enumerate(TOWNSHIP.items()):
            device_id = f"dev-{county}"
            session.add(
                Device(
                    id=device_id,
                    township_code=township,
                    profile="simulator",
                    certificate_pem="-",
                    certificate_serial=f"serial-{county}",
                    fingerprint={},
                    enrolled_at=NOW,
                )
            )
            session.flush()
            command_id = f"cmd-{county}"
            session.add(
                Command(
                    id=command_id,
                    device_id=device_id,
                    kind="restart",
                    arguments={},
                    state="acked",
                    issued_at=NOW,
                    expires_at=NOW + timedelta(days=7),
                )
            )
            session.add(
                EnrollmentCode(
                    code_hash=f"{county:0<64}",
                    township_code=township,
                    profile="simulator",
                    created_at=NOW,
                    expires_at=NOW + timedelta(days=7),
                    created_by="setup",
                )
            )
            numbers, records = _people_and_records(
                session, township, device_id, people, collected, seed=n + 1
            )
            counties[county] = County(township, device_id, command_id, records, numbers)
        tokens: dict[str, str] = {}
        for name, (role, region) in ADMINS.items():
            add_admin(
                session,
                username=name,
                role=role,
                region=region,
                password=PASSWORD,
                now=NOW,
                password_hash=hashed,
            )
            session.flush()
            tokens[name] = issue_token(session, name, NOW)
    return World(counties, tokens)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sample_image(kind: str, seed: int = 0) -> bytes:
    """A small real JPEG or PNG (a browser shows it), different per ``seed``."""
    import io

    from PIL import Image

    rng = random.Random(seed)
    image = Image.new("RGB", (120, 160), (rng.randrange(256), rng.randrange(256), 200))
    out = io.BytesIO()
    image.save(out, format="PNG" if kind == "png" else "JPEG")
    return out.getvalue()


def attach_files(
    sessions: sessionmaker[Session], record_id: str, files: dict[str, bytes]
) -> UploadPrivateKey:
    """Seal ``files`` (name → bytes) to a new upload key as the device does, store the chunks
    verified and name them in the record, so the admin pages can open them with that key."""
    key = generate_upload_key()
    with sessions.begin() as session:
        record = session.get(Record, record_id)
        assert record is not None
        refs = {}
        for name, data in files.items():
            refs[name] = describe_attachment(name, data).model_dump(mode="json")
            for chunk in seal_attachment(
                data,
                record_id=record_id,
                device_id=record.device_id,
                name=name,
                upload_key=key.public_key(),
                key_version=1,
            ):
                session.add(
                    Attachment(
                        record_id=record_id,
                        name=name,
                        chunk_index=chunk.index,
                        chunk_count=chunk.count,
                        device_id=record.device_id,
                        key_version=1,
                        ephemeral_public_key=chunk.ephemeral_public_key,
                        nonce=chunk.nonce,
                        ciphertext=chunk.ciphertext,
                        received_at=NOW,
                        verified_at=NOW,
                    )
                )
        record.payload = {**record.payload, "attachments": refs}
    return key
