"""``muster provision selftest``: is this device ready to collect, and if not, what to do.

Each check returns a ``Check`` with a verdict, what it saw, and — when it failed — the fix in the
technician's words. Checks never raise: a check that cannot run is itself a failure with a fix.
The checks, in order: licence, certificate, controller (gRPC), broker (MQTT, checked at the
TLS layer so it never takes over the daemon's session), reader, camera, clock, disk. A part the
profile says the device does not have is reported as not fitted.

Every check that touches a part goes through the daemon's own adapter for it, built from the
same profile and identity: the licence guard, the gRPC data link's channel
(:func:`edge.uplink.data.check_health`), the MQTT link (:meth:`TelemetryLink.probe_tls`), the
SAM reader (:class:`SamReader`, asked for its module id as the watcher does), the PC/SC context
with the profile's reader filter, and the camera driver (a frame from its reader thread). So a
pass means the daemon's code paths work on this device, not merely that some library does.
Best run with the daemon stopped: it shares the reader's serial line (both resend a garbled
reply, so neither is harmed) and may hold the camera, which then shows as busy.

Over 400 lines because the eight checks share one context and one verdict vocabulary and are
read as the table they print, in that order; each is a short function of its own, and the
adapters they drive live in edge/.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from edge.drivers.camera import CameraDriver, CameraLostError, Frame
from edge.drivers.pcsc.driver import PcscBrokenError, PcscContext
from edge.drivers.sam.driver import SamReader
from edge.drivers.sam.errors import ReaderBrokenError, ReaderTimeoutError, SamError
from edge.identity import IdentityStore
from edge.licence_guard import LicenceGuard, required_features
from edge.uplink.data import check_health
from edge.uplink.telemetry import TelemetryLink
from muster.clock import Clock
from muster.crypto.pki import load_certificate, load_certificates, verify_issued_by_any
from muster.errors import CertificateError, MusterError
from muster.mqtt import client_tls_context, parse_broker_list
from muster.profiles import CameraProfile, FirmwareProfile
from muster.v1 import device_pb2

PASS, FAIL, SKIP = "pass", "fail", "skip"
CLOCK_SKEW_LIMIT = timedelta(minutes=2)
CERT_WARN_DAYS = 30

LICENCE_FIXES = {
    "missing": "向中心申请授权：重新运行 muster provision enroll 或联系技术支持",
    "tampered": "授权文件损坏：联网后守护进程会自动向中心重新领取；仍失败请重新注册",
    "wrong_device": "授权属于另一台设备：不要复制其他设备的状态目录，请用注册码重新注册本机",
    "fingerprint_mismatch": "硬件变更超过一项：恢复原硬件，或联系中心吊销后用新注册码重新注册",
    "not_yet_valid": "校正系统时间（timedatectl / ntpdate）后重试",
    "expired": "联网让守护进程自动续期；若中心拒绝，请联系技术支持办理续期",
    "revoked": "本机已被中心吊销：联系中心确认原因；更换设备请按 README 中的更换步骤操作",
    "clock_rollback": "把系统时间校正为当前时间（不得早于上次运行时间）后重启守护进程",
    "feature_missing": "通用设备需要付费的 generic-device 授权：联系中心办理后重新注册",
}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    verdict: str  # pass | fail | skip
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL


@dataclass
class _Context:
    store: IdentityStore
    profile: FirmwareProfile
    seed: str | None
    clock: Clock
    now: datetime
    timeout_s: float
    server_time: datetime | None = None
    round_trip: timedelta | None = None
    brokers: Sequence[str] = ()


def _licence(ctx: _Context) -> Check:
    guard = LicenceGuard(
        ctx.store,
        simulated_seed=ctx.seed,
        clock=ctx.clock,
        required_features=required_features(ctx.profile),
    )
    verdict = guard.check()
    if verdict.allowed:
        return Check("授权 licence", PASS, f"有效，剩余 {verdict.days_left} 天")
    return Check(
        "授权 licence",
        FAIL,
        f"{verdict.reason}: {verdict.message}",
        LICENCE_FIXES.get(verdict.reason, "联系技术支持"),
    )


def _certificate(ctx: _Context) -> Check:
    name = "证书 certificate"
    try:
        cert = load_certificate(ctx.store.cert_path.read_bytes())
        authorities = load_certificates(ctx.store.ca_path.read_bytes())
        device_id = verify_issued_by_any(cert, authorities, now=ctx.now)
    except FileNotFoundError as exc:
        return Check(name, FAIL, f"缺少文件 {exc.filename}", "用注册码重新注册本机")
    except CertificateError as exc:
        return Check(name, FAIL, str(exc), "用注册码重新注册本机（会生成新的密钥和证书）")
    if device_id != ctx.store.enrolment().device_id:
        return Check(
            name, FAIL, f"证书属于 {device_id}，不是本机", "状态目录被混用：用注册码重新注册本机"
        )
    days = (cert.not_valid_after_utc - ctx.now).days
    if days < CERT_WARN_DAYS:
        return Check(name, FAIL, f"{days} 天后到期", "联系中心更换证书（重新注册本机）")
    return Check(name, PASS, f"{device_id}，{days} 天后到期")


def _controller(ctx: _Context) -> Check:
    name = "中心连接 controller (gRPC)"
    endpoint = ctx.store.enrolment().data_endpoint
    try:
        response, round_trip = asyncio.run(
            check_health(ctx.store, clock=ctx.clock, timeout_s=ctx.timeout_s)
        )
    except FileNotFoundError as exc:
        return Check(name, FAIL, f"缺少文件 {exc.filename}", "用注册码重新注册本机")
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        fix = (
            "本机证书未被中心接受：联系中心确认本机未被吊销，必要时重新注册"
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
            else f"检查网络/VPN 能否到达 {endpoint}，以及中心服务是否在运行"
        )
        return Check(name, FAIL, f"{endpoint}: {exc.details()}", fix)
    ctx.server_time = response.server_time.ToDatetime(tzinfo=UTC)
    ctx.round_trip = round_trip
    if response.revoked:
        return Check(name, FAIL, "中心答复：本机已被吊销", LICENCE_FIXES["revoked"])
    millis = round_trip.total_seconds() * 1000
    return Check(name, PASS, f"{endpoint} 可达，往返 {millis:.0f} ms")


def _broker(ctx: _Context) -> Check:
    return broker_check(ctx.store, timeout_s=ctx.timeout_s, clock=ctx.clock, brokers=ctx.brokers)


_TLS_ONLY = (
    "（只检查到 TLS 层：以本机身份发起 MQTT 连接会顶掉正在运行的守护进程并清除它排队的命令；"
    "守护进程自己的连接状态见其日志 telemetry connected）"
)


def broker_check(
    store: IdentityStore, *, timeout_s: float, clock: Clock, brokers: Sequence[str] = ()
) -> Check:
    """Can this device reach the broker, and does the broker accept its certificate? Every node
    the daemon would try (``brokers``, as given to ``muster edge run --broker``; else the cluster
    or broker the controller named at enrolment), each through the daemon's own
    :class:`TelemetryLink` built as the daemon builds it, probed at the TLS layer only (see
    :meth:`TelemetryLink.probe_tls`). One node that answers is enough to report (the daemon fails
    over), so the check passes then and names the nodes that did not. The daemon's MQTT state is
    in its log ("telemetry connected" / "broker unreachable")."""
    name = "消息服务 broker (MQTT)"
    enrolment = store.enrolment()
    urls = enrolment.broker_urls(brokers)
    try:
        tls = (
            client_tls_context(store.ca_path, store.cert_path, store.key_path)
            if parse_broker_list(urls)[0].tls
            else None
        )
        links = [
            TelemetryLink(
                enrolment.device_id,
                url,
                device_pb2.Heartbeat,
                interval_s=60.0,
                tls_context=tls,
                clock=clock,
            )
            for url in urls
        ]
    except MusterError as exc:
        return Check(name, FAIL, str(exc), "重新注册本机以取得正确的消息服务地址，或改正 --broker")
    except (OSError, ssl.SSLError) as exc:
        return Check(name, FAIL, f"本机证书无法加载：{exc}", "用注册码重新注册本机")
    good: list[str] = []
    bad: list[tuple[str, str, str]] = []  # url, what went wrong, what to do
    for url, link in zip(urls, links, strict=True):
        outcome = _probe(url, link, timeout_s)
        if outcome is None:
            good.append(url)
        else:
            bad.append((url, *outcome))
    if not bad:
        shown = good[0] if len(good) == 1 else f"{len(good)} 个节点 ({', '.join(good)}) 均"
        plain = "（未加密，仅限测试环境）" if tls is None else "，已接受本机证书"
        return Check(name, PASS, f"{shown} 可达{plain}{_TLS_ONLY}")
    failures = "；".join(f"{url}: {detail}" for url, detail, _ in bad)
    if good:
        return Check(
            name,
            PASS,
            f"{len(good)}/{len(urls)} 个节点可用 ({', '.join(good)})；不可用：{failures}。"
            f"本机会自动切换到可用节点，请把不可用的节点告知中心{_TLS_ONLY}",
        )
    return Check(name, FAIL, failures, bad[0][2])


def _probe(url: str, link: TelemetryLink, timeout_s: float) -> tuple[str, str] | None:
    """None when the node took this device's certificate (or is a plain test broker); else what
    went wrong and what to do."""
    host, port = link.broker
    probe = link.probe_tls(timeout_s)
    match probe.outcome:
        case "accepted" | "plain":
            return None
        case "unreachable":
            return probe.detail, f"检查网络/VPN 能否到达 {host}:{port}，以及消息服务是否在运行"
        case "untrusted":
            return (
                f"消息服务的证书不可信：{probe.detail}",
                "本机的 CA 证书与消息服务不符：确认地址正确，或重新注册本机",
            )
        case "bad_identity":
            return f"本机证书无法加载：{probe.detail}", "用注册码重新注册本机"
        case _:
            return (
                probe.detail or "消息服务拒绝了连接",
                "消息服务拒绝了本机证书：联系中心确认本机未被吊销，必要时用注册码重新注册",
            )


def _reader(ctx: _Context) -> Check:
    name = "读卡器 reader"
    parts: list[str] = []
    if ctx.profile.reader.kind == "sam":
        failed = _sam_reader(ctx, parts)
        if failed is not None:
            return failed
    if ctx.profile.pcsc.enabled:
        failed = _pcsc_readers(ctx, parts)
        if failed is not None:
            return failed
    if not parts:
        return Check(name, SKIP, "本型号未配读卡器")
    return Check(name, PASS, "；".join(parts))


def _sam_reader(ctx: _Context, parts: list[str]) -> Check | None:
    """Open the ID-card reader as the daemon's watcher does and ask the SAM module its id."""
    name = "读卡器 reader"
    profile = ctx.profile.reader
    reader = SamReader.from_profile(profile, clock=ctx.clock)
    try:
        with reader:
            sam_id = reader.sam_id()
    except ReaderBrokenError as exc:
        return Check(
            name,
            FAIL,
            f"{profile.port}: {exc}",
            f"检查身份证读卡器的 USB 线和电源；确认设备出现为 {profile.port}（ls /dev/ttyUSB*）",
        )
    except ReaderTimeoutError as exc:
        return Check(
            name,
            FAIL,
            f"{profile.port}: {exc}",
            f"读卡器无应答：确认 {profile.port} 接的是身份证读卡器、波特率为 {profile.baud}；"
            "重新插拔读卡器后重试",
        )
    except (SamError, MusterError) as exc:
        return Check(
            name,
            FAIL,
            f"{profile.port}: {exc}",
            "读卡器的安全模块报错：重新插拔读卡器；仍失败请更换读卡器",
        )
    parts.append(f"身份证读卡器 {profile.port} 应答，安全模块 {sam_id}")
    return None


def _pcsc_readers(ctx: _Context, parts: list[str]) -> Check | None:
    """List the PC/SC readers through the daemon's PC/SC context, with the daemon's filter."""
    name = "读卡器 reader"
    wanted = ctx.profile.pcsc.reader_filter
    try:
        context = PcscContext()
    except PcscBrokenError as exc:
        return Check(
            name, FAIL, f"PC/SC: {exc}", "启动 pcscd 服务（systemctl start pcscd）并插好读卡器"
        )
    try:
        names = [r for r in context.readers() if wanted in r]
        cards = context.cards(names)
    except PcscBrokenError as exc:
        return Check(name, FAIL, f"PC/SC: {exc}", "重启 pcscd 服务并重新插拔社保卡/银行卡读卡器")
    finally:
        context.close()
    if not names:
        return Check(
            name, FAIL, "PC/SC 没有找到读卡器", "插好社保卡/银行卡读卡器并确认 pcscd 在运行"
        )
    shown = [f"{n}（{'有卡' if cards.get(n) else '无卡'}）" for n in names]
    parts.append(f"PC/SC: {', '.join(shown)}")
    return None


def _camera(ctx: _Context) -> Check:
    name = "摄像头 camera"
    camera = ctx.profile.camera
    if camera.kind == "none":
        return Check(name, SKIP, "本型号未配摄像头")
    fix = "检查摄像头 USB 连接；确认 /dev/video* 存在且未被其他程序占用"
    try:
        frame = asyncio.run(_one_frame(camera, ctx.clock, ctx.timeout_s))
    except CameraLostError as exc:
        return Check(name, FAIL, f"无法从 {camera.source} 取得画面：{exc}", fix)
    except MusterError as exc:
        return Check(name, FAIL, f"{camera.source}: {exc}", "检查设备配置文件中的 camera.source")
    height, width = frame.image.shape[:2]
    return Check(name, PASS, f"{camera.source} 可取得画面（{width}x{height}）")


async def _one_frame(profile: CameraProfile, clock: Clock, timeout_s: float) -> Frame:
    """A frame through the daemon's camera driver, on its reader thread."""
    async with CameraDriver(profile, clock=clock) as driver:
        await driver.wait_online(timeout_s)
        return await driver.next_frame(timeout_s)


def _clock(ctx: _Context) -> Check:
    name = "时钟 clock"
    if ctx.server_time is None or ctx.round_trip is None:
        return Check(name, SKIP, "无法与中心比对（中心不可达）")
    skew = ctx.now - ctx.server_time
    if abs(skew) > CLOCK_SKEW_LIMIT + ctx.round_trip:
        return Check(
            name,
            FAIL,
            f"与中心相差 {skew.total_seconds():+.0f} 秒",
            "校正系统时间（开启 NTP：timedatectl set-ntp true），不要把时间往回调",
        )
    return Check(name, PASS, f"与中心相差 {skew.total_seconds():+.1f} 秒")


def _disk(ctx: _Context) -> Check:
    name = "磁盘 disk"
    free = shutil.disk_usage(ctx.store.directory.parent).free
    need = max(ctx.profile.outbox.min_disk_free_bytes, 50 * 2**20)
    if free < need:
        return Check(
            name,
            FAIL,
            f"剩余 {free // 2**20} MB，低于 {need // 2**20} MB",
            "清理磁盘（日志、下载文件），或让设备联网上传后再采集",
        )
    return Check(name, PASS, f"剩余 {free // 2**20} MB")


CHECKS: tuple[tuple[str, Callable[[_Context], Check]], ...] = (
    ("licence", _licence),
    ("certificate", _certificate),
    ("controller", _controller),
    ("broker", _broker),
    ("reader", _reader),
    ("camera", _camera),
    ("clock", _clock),  # after the controller check: it compares with the controller's time
    ("disk", _disk),
)


def run_selftest(
    state_dir: Path,
    profile: FirmwareProfile,
    *,
    simulated_seed: str | None = None,
    timeout_s: float = 10.0,
    clock: Clock,
    progress: Callable[[str], None] = lambda name: None,
    brokers: Sequence[str] = (),
) -> list[Check]:
    store = IdentityStore(state_dir)
    if not store.is_enrolled():
        return [
            Check(
                "注册 enrolment",
                FAIL,
                f"{state_dir} 中没有注册信息",
                "先用注册码注册：muster provision enroll --qr-image 注册码.png，"
                "或 muster provision enroll --controller HOST:PORT --code CODE --ca-cert ca.crt",
            )
        ]
    ctx = _Context(store, profile, simulated_seed, clock, clock.now(), timeout_s, brokers=brokers)
    results = []
    for key, check in CHECKS:
        progress(key)
        try:
            results.append(check(ctx))
        except Exception as exc:  # a check that cannot run is a failure, never a crash
            results.append(Check(key, FAIL, f"检查无法运行：{exc}", "联系技术支持"))
    return results
