"""Software updates end to end: the controller's real gRPC servers on the mutual-TLS data port
over a real database, devices that are real processes running the real updater, a release
signed by the controller's release key. Rollouts in waves, a release that crashes on start,
refusals, and kill -9 at every step of an update."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from controller.db import make_engine, migrate, session_factory
from controller.db.models import Alert, Rollout, RolloutDevice, UpdateEvent
from controller.devices.enrolment import Enroller, publish_upload_keys
from controller.devices.pki_store import ControllerPki, ensure_controller_pki
from controller.records.ingest import Ingestor
from controller.releases.keys import load_release_keys
from controller.releases.rollouts import (
    RETRY_AFTER_S,
    RolloutStatus,
    abort_rollout,
    advance_rollouts,
    create_rollout,
    resume_rollout,
    rollout_status,
)
from controller.releases.store import add_release
from controller.rpc.servers import build_servers
from controller.settings import ControllerSettings
from edge.enrolment import release_keys_json
from edge.outbox import Outbox
from edge.updates.slots import RELEASE_KEYS_FILE
from edge.updates.updater import Updater
from muster.clock import VirtualClock
from muster.crypto import generate_device_key, generate_licence_authority_key, private_key_pem
from muster.crypto.pki import certificate_pem, load_certificate
from muster.release_artifacts import build_artifact
from muster.v1 import data_pb2, updates_pb2, updates_pb2_grpc
from tests.fixtures.components import free_port
from tests.unit.test_enrollment import enrol_directly

ROOT = Path(__file__).resolve().parents[2]
GOOD_START = "print('started')\n"
CRASHING_START = "import sys\nsys.exit('the new version fails on start')\n"


@dataclass
class Device:
    device_id: str
    directory: Path
    kills: int = 0


@dataclass
class Centre:
    sessions: sessionmaker[Session]
    pki: ControllerPki
    clock: VirtualClock
    settings: ControllerSettings
    tmp: Path
    devices: list[Device] = field(default_factory=list)
    beats: int = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.settings.data_port}"

    def enrol(self, township: str = "370902001000") -> Device:
        key = generate_device_key()
        response = enrol_directly(
            self.sessions, self.pki, key, township=township, now=self.clock.now()
        )
        directory = self.tmp / f"dev-{len(self.devices)}"
        identity = directory / "identity"
        identity.mkdir(parents=True)
        (identity / "key.pem").write_bytes(private_key_pem(key))
        (identity / "cert.pem").write_bytes(
            certificate_pem(load_certificate(response.certificate_der))
        )
        (identity / "ca.pem").write_bytes(self.pki.ca_cert_path.read_bytes())
        # The release keys the enrolment answer pinned, as edge/enrolment.py stores them.
        (identity / RELEASE_KEYS_FILE).write_bytes(release_keys_json(response))
        outbox = Outbox(directory / "outbox.sqlite3", clock=self.clock)
        for n in range(20):
            outbox.add(data_pb2.SealedRecord(record_id=f"r{n:04d}", schema_version="a/1"), f"h{n}")
        outbox.close()
        (directory / "drafts").mkdir()
        (directory / "drafts" / "d1.json").write_text('{"draft": 1}')
        device = Device(response.device_id, directory)
        self.devices.append(device)
        return device

    def release(self, version: str, start: str = GOOD_START, *, size: int = 1_000_000) -> None:
        parts = self.tmp / f"parts-{version}"
        parts.mkdir()
        (parts / "start.py").write_text(start)
        (parts / f"muster-{version}-py3-none-any.whl").write_bytes(
            hashlib.sha256(version.encode()).digest() * (size // 32)
        )
        artifact = self.tmp / f"release-{version}.tar"
        build_artifact(
            artifact,
            version=version,
            profiles=["simulator"],
            minimum_version="0.1.0",
            parts=sorted(parts.iterdir()),
            key=load_release_keys(self.pki.directory).signing.key,
        )
        with self.sessions.begin() as session:
            add_release(
                session,
                self.settings.data_dir,
                artifact,
                load_release_keys(self.pki.directory).trusted(),
                now=self.clock.now(),
            )

    def rollout(self, version: str, waves: list[float], **options: object) -> int:
        with self.sessions.begin() as session:
            rollout = create_rollout(
                session,
                version=version,
                region_prefix=str(options.get("region", "")),
                profiles=["simulator"],
                waves=waves,
                soak_s=int(options.get("soak_s", 60)),  # type: ignore[call-overload]
                health_window_s=600,
                failure_threshold=float(options.get("threshold", 0.2)),  # type: ignore[arg-type]
                now=self.clock.now(),
            )
            return rollout.id

    def beat(self, devices: list[Device]) -> None:
        """Each device's heartbeat, naming the version it runs, through the real telemetry
        store: the wave gate reads the heartbeats from there."""
        from controller.fleet.telemetry_store import DeviceStateStore
        from edge.updates.slots import Slots
        from muster.v1 import device_pb2

        self.beats += 1
        DeviceStateStore(self.sessions, self.clock).apply(
            [
                (
                    d.device_id,
                    "telemetry",
                    device_pb2.Heartbeat(
                        device_id=d.device_id,
                        sequence=self.beats,
                        software_version=Slots(d.directory, "0.1.0").running_version(),
                    ).SerializeToString(),
                )
                for d in devices
            ]
        )

    def status(self, rollout_id: int) -> RolloutStatus:
        with self.sessions() as session:
            return rollout_status(session, rollout_id)

    def channel(self, device: Device) -> grpc.aio.Channel:
        identity = device.directory / "identity"
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(identity / "ca.pem").read_bytes(),
            private_key=(identity / "key.pem").read_bytes(),
            certificate_chain=(identity / "cert.pem").read_bytes(),
        )
        return grpc.aio.secure_channel(self.endpoint, credentials)


@pytest.fixture
async def centre(tmp_path: Path) -> AsyncIterator[Centre]:
    # TLS checks certificates against the real time, so the centre's clock starts there.
    clock = VirtualClock(datetime.now(UTC).replace(microsecond=0))
    data_dir = tmp_path / "ctl"
    pki = ensure_controller_pki(data_dir, ["127.0.0.1", "localhost"], now=clock.now())
    url = f"sqlite:///{tmp_path / 'controller.db'}"
    migrate(url)
    sessions = session_factory(make_engine(url))
    with sessions.begin() as session:
        publish_upload_keys(session, pki, clock.now())
    settings = ControllerSettings(data_dir=data_dir, enrol_port=free_port(), data_port=free_port())
    enroller = Enroller(
        sessions, pki, licence_days=30, mqtt_url="mqtt://x:1", data_endpoint="x:2", clock=clock
    )
    servers = build_servers(
        settings, pki, sessions, enroller, Ingestor(sessions, dict(pki.upload_keys), clock), clock
    )
    for server in servers:
        await server.start()
    try:
        yield Centre(sessions, pki, clock, settings, tmp_path)
    finally:
        for server in servers:
            await server.stop(None)
        sessions.kw["bind"].dispose()


def untouched(device: Device) -> dict[str, str]:
    """Hash of every file of the device outside ``software/``: outbox, drafts, identity."""
    return {
        str(p.relative_to(device.directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(device.directory.rglob("*"))
        if p.is_file()
        and "software" not in p.relative_to(device.directory).parts
        and p.name != "hung"
    }


async def boot(
    centre: Centre, device: Device, *, hang_at: str = "", hang_after: int = 1
) -> tuple[int, str]:
    """Start the device process once; with ``hang_at`` kill -9 it there. (exit code, output)."""
    (device.directory / "hung").unlink(missing_ok=True)
    command = [sys.executable, "-m", "tests.integration.update_device"]
    command += [str(device.directory), centre.endpoint]
    if hang_at:
        command += ["--hang-at", hang_at, "--hang-after", str(hang_after)]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if not hang_at:
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, (out + err).decode()
    for _ in range(600):
        if (device.directory / "hung").exists() or process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    if process.returncode is None and (device.directory / "hung").exists():
        process.send_signal(signal.SIGKILL)
        device.kills += 1
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == -signal.SIGKILL, (out + err).decode()[-2000:]
    return process.returncode, (out + err).decode()


async def settle(centre: Centre, device: Device, boots: int = 6) -> str:
    """Boot the device until it runs to completion; its running version."""
    output = ""
    for _ in range(boots):
        code, output = await boot(centre, device)
        if code == 0:
            return output.strip().splitlines()[-1]
    raise AssertionError(f"device never settled: {output[-3000:]}")


def device_states(centre: Centre, rollout_id: int) -> dict[str, str]:
    with centre.sessions() as session:
        return {
            r.device_id: r.state
            for r in session.scalars(
                select(RolloutDevice).where(RolloutDevice.rollout_id == rollout_id)
            )
        }


# --- rollouts ---------------------------------------------------------------------------------


async def test_a_rollout_in_three_waves_completes(centre: Centre) -> None:
    devices = [centre.enrol() for _ in range(10)]
    before = {d.device_id: untouched(d) for d in devices}
    centre.release("0.2.0")
    rollout_id = centre.rollout("0.2.0", [10, 50, 100], soak_s=60)
    status = centre.status(rollout_id)
    assert [w.devices for w in status.waves] == [1, 4, 5]
    for wave in range(3):
        results = await asyncio.gather(*(settle(centre, d) for d in devices))
        updated = sorted(d.device_id for d, v in zip(devices, results, strict=True) if v == "0.2.0")
        assert len(updated) == [1, 5, 10][wave]
        # The next wave opens only once this one has been healthy for the soak time.
        await settle(centre, devices[0])
        assert centre.status(rollout_id).current_wave == wave
        centre.clock.advance_now(61)
        centre.beat(devices)
        await settle(centre, devices[0])
    status = centre.status(rollout_id)
    assert status.state == "completed" and not status.failures
    assert set(device_states(centre, rollout_id).values()) == {"healthy"}
    for device in devices:
        assert untouched(device) == before[device.device_id]
        assert (device.directory / "software" / "current").readlink().name in ("a", "b")


async def test_a_release_crashing_on_start_is_rolled_back_and_pauses_the_rollout(
    centre: Centre,
) -> None:
    devices = [centre.enrol() for _ in range(10)]
    before = {d.device_id: untouched(d) for d in devices}
    centre.release("0.2.0", CRASHING_START)
    rollout_id = centre.rollout("0.2.0", [20, 100], threshold=0.1)
    results = await asyncio.gather(*(settle(centre, d, boots=8) for d in devices))
    assert results == ["0.1.0"] * 10  # every device runs the version it had
    states = device_states(centre, rollout_id)
    first_wave = [d for d, s in states.items() if s != "pending"]
    assert len(first_wave) == 2 and all(states[d] == "rolled_back" for d in first_wave)
    status = centre.status(rollout_id)
    assert status.state == "paused" and "自动暂停" in status.state_reason
    assert {reason.split(":")[0] for _, _, reason in status.failures} == {"crash_loop"}
    with centre.sessions() as session:
        alert = session.scalar(select(Alert).where(Alert.open_key == f"rollout:{rollout_id}"))
        assert alert is not None and alert.kind == "rollout"
    # Paused: the second wave is offered nothing.
    assert set(await asyncio.gather(*(settle(centre, d) for d in devices))) == {"0.1.0"}
    assert sorted(device_states(centre, rollout_id).values()).count("pending") == 8
    for device in devices:
        assert untouched(device) == before[device.device_id]
    # Resumed, the rolled-back devices are not offered the same release again.
    with centre.sessions.begin() as session:
        resume_rollout(session, rollout_id, centre.clock.now())
        assert session.scalar(select(Alert.resolved_at).where(Alert.id == alert.id)) is not None


async def test_refusals_change_nothing_on_the_device(centre: Centre) -> None:
    """A part whose hash is wrong is refused with nothing changed; the damage being the
    world's, the device is offered the release again once the retry's wait passed, as its second
    attempt, and takes it once the part is whole again."""
    device = centre.enrol()
    before = untouched(device)
    centre.release("0.2.0")
    rollout_id = centre.rollout("0.2.0", [100])
    # The release on the centre's disk is replaced by another of the same size: the device
    # downloads it, finds the hash wrong and refuses; its software is as it was.
    stored = centre.settings.data_dir / "releases" / "0.2.0" / "start.py"
    stored.write_text(GOOD_START.replace("started", "evil!!!"))
    assert await settle(centre, device) == "0.1.0"
    assert device_states(centre, rollout_id)[device.device_id] == "retrying"
    with centre.sessions() as session:
        reasons = list(
            session.scalars(select(UpdateEvent.reason).where(UpdateEvent.state == "refused"))
        )
    assert reasons and reasons[0].startswith("hash_mismatch")
    assert (device.directory / "software" / "current").readlink().name == "factory"
    assert untouched(device) == before
    # Not before the wait has passed; then the whole part is taken.
    stored.write_text(GOOD_START)
    assert await settle(centre, device) == "0.1.0"
    centre.clock.advance_now(RETRY_AFTER_S + 1)
    assert await settle(centre, device) == "0.2.0"
    with centre.sessions() as session:
        entry = session.get(RolloutDevice, (rollout_id, device.device_id))
        assert entry is not None and (entry.state, entry.attempts) == ("healthy", 2)
    assert untouched(device) == before


async def test_a_device_downloads_only_what_it_was_offered(centre: Centre) -> None:
    inside, outside = centre.enrol("370902001000"), centre.enrol("370903001000")
    centre.release("0.2.0")
    centre.rollout("0.2.0", [100], region="370902")
    async with centre.channel(outside) as channel:
        stub = updates_pb2_grpc.UpdatesStub(channel)
        offer = await stub.Offer(updates_pb2.OfferRequest(current_version="0.1.0"))
        assert not offer.available
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Download(
                updates_pb2.DownloadRequest(version="0.2.0", part="start.py")
            ):
                pass
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    async with centre.channel(inside) as channel:
        stub = updates_pb2_grpc.UpdatesStub(channel)
        assert (await stub.Offer(updates_pb2.OfferRequest(current_version="0.1.0"))).available
        for request, code in [
            (
                updates_pb2.DownloadRequest(version="0.2.0", part="../controller.db"),
                grpc.StatusCode.NOT_FOUND,
            ),
            (
                updates_pb2.DownloadRequest(version="0.2.0", part="start.py", offset=10**9),
                grpc.StatusCode.OUT_OF_RANGE,
            ),
            (
                updates_pb2.DownloadRequest(version="x" * 5000, part="start.py"),
                grpc.StatusCode.NOT_FOUND,
            ),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stub.Download(request):
                    pass
            assert caught.value.code() == code
        # A resumed download gets exactly the rest.
        chunks = [
            c
            async for c in stub.Download(
                updates_pb2.DownloadRequest(version="0.2.0", part="start.py", offset=5)
            )
        ]
        assert b"".join(c.data for c in chunks) == GOOD_START.encode()[5:]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Report(updates_pb2.UpdateReport(state=99))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_release_signed_by_another_key_is_refused_by_the_device(centre: Centre) -> None:
    """Even if a forged release got into the centre's store, the device trusts only release
    keys it already holds (or ones they endorsed)."""
    device = centre.enrol()
    centre.release("0.2.0")
    rollout_id = centre.rollout("0.2.0", [100])
    assert await settle(centre, device) == "0.2.0"
    with centre.sessions.begin() as session:
        abort_rollout(session, rollout_id, "next release", centre.clock.now())
    # A second release whose manifest is signed by a stranger, written behind the store's back.
    centre.release("0.3.0")
    from controller.db.models import Release
    from muster.crypto.signing import sign_ed25519

    stranger = generate_licence_authority_key()
    with centre.sessions.begin() as session:
        release = session.get(Release, "0.3.0")
        assert release is not None
        release.signature = sign_ed25519(stranger, release.manifest)
    second = centre.rollout("0.3.0", [100])
    assert rollout_id != second
    before = untouched(device)
    assert await settle(centre, device) == "0.2.0"
    assert device_states(centre, second)[device.device_id] == "refused"
    assert untouched(device) == before


# --- kill -9 at every step --------------------------------------------------------------------

KILL_STEPS = [
    ("downloading", 1),
    ("downloading", 3),
    ("verifying", 1),
    ("installing", 1),
    ("switching", 1),
    ("first_start", 1),
    ("confirming", 1),
    ("rolling_back", 1),
]


async def _kill_rounds(centre: Centre, device: Device, rollout_id: int, rounds: int) -> None:
    import shutil

    from edge.updates.slots import Slots

    baseline = untouched(device)
    for round_ in range(rounds):
        for step, after in KILL_STEPS:
            shutil.rmtree(device.directory / "software", ignore_errors=True)
            with centre.sessions.begin() as session:
                session.execute(
                    update(RolloutDevice)
                    .where(
                        RolloutDevice.rollout_id == rollout_id,
                        RolloutDevice.device_id == device.device_id,
                    )
                    .values(state="pending", healthy_at=None)
                )
            expected = "0.2.0"
            if step == "rolling_back":
                # A rollback to kill: a trial that crash-looped past its starts is rolled back.
                assert await settle(centre, device) == "0.2.0"
                slots = Slots(device.directory, "0.1.0")
                state = slots.load()
                state.phase, state.slot = "switched", slots.current_slot()
                state.previous_slot, state.version, state.boots = "factory", "0.2.0", 9
                state.switched_at, state.health_window_s = centre.clock.now().isoformat(), 600
                slots.save(state)
                expected = "0.1.0"
            await boot(centre, device, hang_at=step, hang_after=after)
            assert await settle(centre, device) == expected, (step, after, round_)
            assert untouched(device) == baseline, (step, round_)
            outbox = Outbox(device.directory / "outbox.sqlite3", clock=centre.clock)
            assert outbox.stats().pending == 20 and outbox.contains("r0019")
            outbox.close()


@pytest.mark.timeout(600)
async def test_kill_9_at_every_step_ends_on_a_good_version_with_the_outbox_intact(
    centre: Centre,
) -> None:
    """Each round: the device's software reset to the factory version, an update to 0.2.0, the
    device process killed with SIGKILL at one step, then booted until it settles. It must run
    0.2.0 (or, for a kill during a rollback, the version it rolled back to) with every file
    outside ``software/`` (outbox, drafts, identity) byte for byte as it was. Three devices run
    side by side; 3 x 2 rounds x 8 steps = 48 kills, and test_launcher.py kills the launcher
    twice more: 50 in CI."""
    devices = [centre.enrol() for _ in range(3)]
    centre.release("0.2.0")
    rollout_id = centre.rollout("0.2.0", [100], threshold=0.99)
    rounds = int(os.environ.get("MUSTER_UPDATE_KILL_ROUNDS", "2"))
    await asyncio.gather(*(_kill_rounds(centre, d, rollout_id, rounds) for d in devices))
    kills = sum(d.kills for d in devices)
    assert kills == len(devices) * rounds * len(KILL_STEPS) >= 48 or rounds < 2
    print(f"kill -9 of a device during an update: {kills} kills, every one recovered")


# --- the updater in-process, on the virtual clock ------------------------------------------------


def in_process_updater(
    centre: Centre, device: Device, **options: object
) -> tuple[Updater, list[str]]:
    restarts: list[str] = []

    async def restart() -> None:
        restarts.append(updater.slots.current_slot())

    updater = Updater(
        device.directory,
        profile="simulator",
        factory_version="0.1.0",
        channel=lambda: centre.channel(device),
        clock=centre.clock,
        restart=restart,
        **options,  # type: ignore[arg-type]
    )
    return updater, restarts


async def test_a_new_version_not_healthy_within_its_window_is_rolled_back(centre: Centre) -> None:
    device = centre.enrol()
    before = untouched(device)
    centre.release("0.2.0")
    rollout_id = centre.rollout("0.2.0", [100])
    updater, restarts = in_process_updater(centre, device, disk_margin_bytes=0)
    assert await updater.check_once() == "switched"
    assert restarts == ["a"] and updater.slots.running_version() == "0.2.0"
    await updater.boot()  # the new version starts, but never says it is healthy
    centre.clock.advance_now(599)
    assert await updater.check_once() == "watching"
    centre.clock.advance_now(2)
    assert await updater.check_once() == "rolled_back"
    assert restarts == ["a", "factory"] and updater.slots.running_version() == "0.1.0"
    with centre.sessions() as session:
        entry = session.get(RolloutDevice, (rollout_id, device.device_id))
        assert entry is not None and entry.state == "rolled_back"
        assert entry.reason.startswith("not_healthy")
    # Not offered again, and not taken again if it were.
    assert await updater.check_once() == "none"
    assert untouched(device) == before


async def test_no_switch_while_busy_and_no_download_without_disk_space(centre: Centre) -> None:
    device, cramped = centre.enrol(), centre.enrol()
    before = untouched(device), untouched(cramped)
    centre.release("0.2.0")
    rollout_id = centre.rollout("0.2.0", [100], threshold=0.6)
    full, _ = in_process_updater(centre, cramped, disk_margin_bytes=2**62)
    assert await full.check_once() == "refused:no_space"
    assert full.slots.current_slot() == "factory"
    assert not (full.slots.root / "downloads").exists()
    busy = {"why": "录入员 clerk1 有未完成的草稿 (an open draft)"}
    updater, restarts = in_process_updater(
        centre, device, disk_margin_bytes=0, busy=lambda: busy["why"]
    )
    assert await updater.check_once() == "deferred"
    assert await updater.check_once() == "deferred"
    assert restarts == [] and updater.slots.current_slot() == "factory"
    states = device_states(centre, rollout_id)
    assert states == {device.device_id: "deferred", cramped.device_id: "retrying"}
    busy["why"] = ""
    assert await updater.check_once() == "switched"
    assert restarts == ["a"]
    await updater.boot()
    await updater.confirm_healthy()
    assert device_states(centre, rollout_id)[device.device_id] == "healthy"
    assert (untouched(device), untouched(cramped)) == before


async def test_a_100_device_wave_over_the_data_port(centre: Centre) -> None:
    """One wave of 100 devices, each the real updater in this process over its own mutual-TLS
    channel: all download 1 MB, verify, switch, start and report healthy; the wave then closes.
    Prints how long the wave took (for the issue's note; nothing asserts on time)."""
    import time

    devices = [centre.enrol() for _ in range(100)]
    centre.release("0.2.0")
    rollout_id = centre.rollout("0.2.0", [100], soak_s=0)
    updaters = [in_process_updater(centre, d, disk_margin_bytes=0)[0] for d in devices]

    async def one(updater: Updater) -> str:
        assert await updater.check_once() == "switched"
        await updater.boot()
        await updater.confirm_healthy()
        return updater.slots.running_version()

    started = time.perf_counter()
    assert await asyncio.gather(*(one(u) for u in updaters)) == ["0.2.0"] * 100
    took = time.perf_counter() - started
    centre.beat(devices)
    with centre.sessions.begin() as session:
        advance_rollouts(session, centre.clock.now())
    assert set(device_states(centre, rollout_id).values()) == {"healthy"}
    assert centre.status(rollout_id).state == "completed"
    print(f"a 100-device wave (1 MB release each, one controller process): {took:.1f} s")


async def test_the_supervised_job_updates_confirms_and_rolls_back_on_the_clock(
    centre: Centre,
) -> None:
    """The daemon's job (edge/updates/task.py) on the virtual clock: it takes the offered
    release and stops the daemon; the next start confirms the version once ``healthy()`` says
    so. A release whose start never gets healthy is rolled back when its window passes."""
    from edge.updates.task import busy_reason, updates_job

    device = centre.enrol()
    centre.release("0.2.0")
    centre.rollout("0.2.0", [100], soak_s=0)
    stops: list[str] = []
    health = {"ok": False}

    def start_daemon() -> tuple[Updater, asyncio.Task[None]]:
        async def restart() -> None:
            stops.append(updater.slots.current_slot())

        updater, job = updates_job(
            device.directory,
            profile="simulator",
            factory_version="0.1.0",
            channel=lambda: centre.channel(device),
            clock=centre.clock,
            restart=restart,
            busy=lambda: busy_reason(lambda: 0, lambda: False),
            healthy=lambda: health["ok"],
            check_every_s=60,
            watch_every_s=5,
            disk_margin_bytes=0,  # the test machine's disk is not the device's
        )
        return updater, asyncio.create_task(job())

    async def until(condition: object, steps: int = 400) -> None:
        for _ in range(steps):
            if callable(condition) and condition():
                return
            await asyncio.sleep(0.02)
            centre.clock.advance_now(1)
        raise AssertionError("condition never held")

    updater, task = start_daemon()
    await until(lambda: stops == ["a"])
    task.cancel()
    updater, task = start_daemon()  # systemd starts the daemon again, now on slot a
    await until(lambda: updater.slots.load().boots == 1)
    health["ok"] = True
    await until(lambda: updater.slots.load().phase == "idle")
    assert updater.slots.running_version() == "0.2.0" and stops == ["a"]
    task.cancel()
    # The next release never gets healthy: rolled back once its 600 s window has passed.
    centre.release("0.3.0")
    with centre.sessions.begin() as session:
        session.execute(update(Rollout).values(state="completed"))
    centre.rollout("0.3.0", [100])
    health["ok"] = False
    updater, task = start_daemon()
    await until(lambda: stops == ["a", "b"])
    task.cancel()
    updater, task = start_daemon()
    await until(lambda: len(stops) == 3, steps=2000)
    assert stops[-1] == "a" and updater.slots.running_version() == "0.2.0"
    task.cancel()
    assert (await asyncio.gather(task, return_exceptions=True))[0] is not None


async def test_inside_working_hours_the_data_port_offers_nothing_unless_forced(
    centre: Centre,
) -> None:
    from controller.releases.update_windows import set_working_hours
    from controller.releases.working_hours import parse_window

    device = centre.enrol()
    centre.release("0.2.0")
    rollout_id = centre.rollout("0.2.0", [100])
    with centre.sessions.begin() as session:
        set_working_hours(session, parse_window("3709", "00:00-24:00"), "3709")
    async with centre.channel(device) as channel:
        stub = updates_pb2_grpc.UpdatesStub(channel)
        offer = await stub.Offer(updates_pb2.OfferRequest(current_version="0.1.0"))
        assert not offer.available and "工作时间 00:00-24:00" in offer.reason
        with centre.sessions.begin() as session:
            session.execute(
                update(Rollout).where(Rollout.id == rollout_id).values(ignore_working_hours=True)
            )
        offer = await stub.Offer(updates_pb2.OfferRequest(current_version="0.1.0"))
        assert offer.available and offer.attempt == 1
