"""``muster provision selftest``: is this device ready to collect, and if not, what to do.

Each check returns a ``Check`` with a verdict, what it saw, and — when it failed — the fix in the
technician's words. Checks never raise: a check that cannot run is itself a failure with a fix.
The checks, in order: licence, certificate, controller (gRPC), broker (MQTT, checked at the
TLS layer so it never takes over the daemon's session), reader, camera, clock, disk. A part the profile says the device does not have is reported as not fitted.
"""

from __future__ import annotations

import shutil
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from edge.identity import IdentityStore
from edge.licence_guard import LicenceGuard, required_features
from muster.clock import Clock
from muster.crypto.pki import load_certificate, load_certificates, verify_issued_by_any
from muster.errors import CertificateError, MusterError
from muster.mqtt import parse_broker_url
from muster.profiles import FirmwareProfile
from muster.v1 import data_pb2, data_pb2_grpc

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
    enrolment = ctx.store.enrolment()
    try:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ctx.store.ca_path.read_bytes(),
            private_key=ctx.store.key_path.read_bytes(),
            certificate_chain=ctx.store.cert_path.read_bytes(),
        )
    except FileNotFoundError as exc:
        return Check(name, FAIL, f"缺少文件 {exc.filename}", "用注册码重新注册本机")
    sent = ctx.clock.now()
    with grpc.secure_channel(enrolment.data_endpoint, credentials) as channel:
        try:
            response: data_pb2.HealthResponse = data_pb2_grpc.DeviceStub(channel).Health(
                data_pb2.HealthRequest(), timeout=ctx.timeout_s
            )
        except grpc.RpcError as exc:
            code = exc.code()
            details = exc.details()
            fix = (
                "本机证书未被中心接受：联系中心确认本机未被吊销，必要时重新注册"
                if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
                else f"检查网络/VPN 能否到达 {enrolment.data_endpoint}，以及中心服务是否在运行"
            )
            return Check(name, FAIL, f"{enrolment.data_endpoint}: {details}", fix)
    received = ctx.clock.now()
    ctx.server_time = response.server_time.ToDatetime(tzinfo=UTC)
    ctx.round_trip = received - sent
    if response.revoked:
        return Check(name, FAIL, "中心答复：本机已被吊销", LICENCE_FIXES["revoked"])
    millis = ctx.round_trip.total_seconds() * 1000
    return Check(name, PASS, f"{enrolment.data_endpoint} 可达，往返 {millis:.0f} ms")


# How long a refusal of our certificate may take to arrive after the TLS handshake (TLS 1.3:
# the broker checks the client certificate after the handshake and answers with an alert).
REFUSAL_WAIT_S = 2.0


def _broker(ctx: _Context) -> Check:
    return broker_check(ctx.store, timeout_s=ctx.timeout_s)


def broker_check(store: IdentityStore, *, timeout_s: float) -> Check:
    """Can this device reach the broker, and does the broker accept its certificate? Checked at
    the TLS layer only, never with an MQTT CONNECT: the broker binds the client id to the
    certificate, so any CONNECT with this certificate *is* the daemon's session; it would push
    the running daemon off and, with a clean session, wipe the commands queued for it. The
    daemon writes no status file, so its own MQTT connection state is in its log
    ("telemetry connected" / "broker unreachable")."""
    name = "消息服务 broker (MQTT)"
    enrolment = store.enrolment()
    try:
        address = parse_broker_url(enrolment.mqtt_url)
    except MusterError as exc:
        return Check(name, FAIL, str(exc), "重新注册本机以取得正确的消息服务地址")
    url = enrolment.mqtt_url
    unreachable = f"检查网络/VPN 能否到达 {address.host}:{address.port}，以及消息服务是否在运行"
    refused_fix = "消息服务拒绝了本机证书：联系中心确认本机未被吊销，必要时用注册码重新注册"
    tls_only = (
        "（只检查到 TLS 层：以本机身份发起 MQTT 连接会顶掉正在运行的守护进程并清除它排队的命令；"
        "守护进程自己的连接状态见其日志 telemetry connected）"
    )
    try:
        raw = socket.create_connection((address.host, address.port), timeout=timeout_s)
    except OSError as exc:
        return Check(name, FAIL, f"{url}: {exc}", unreachable)
    with raw:
        if not address.tls:
            return Check(name, PASS, f"{url} 可达（未加密，仅限测试环境）{tls_only}")
        try:
            context = ssl.create_default_context(cafile=str(store.ca_path))
            context.load_cert_chain(str(store.cert_path), str(store.key_path))
        except (OSError, ssl.SSLError) as exc:
            return Check(name, FAIL, f"本机证书无法加载：{exc}", "用注册码重新注册本机")
        try:
            with context.wrap_socket(raw, server_hostname=address.host) as tls:
                tls.settimeout(min(timeout_s, REFUSAL_WAIT_S))
                try:
                    answer = tls.recv(1)
                except TimeoutError:
                    answer = None  # silence: the broker waits for our CONNECT, it accepted us
                if answer == b"":
                    return Check(name, FAIL, f"{url}: 消息服务在握手后断开了连接", refused_fix)
        except ssl.SSLCertVerificationError as exc:
            return Check(
                name,
                FAIL,
                f"{url}: 消息服务的证书不可信：{exc.verify_message}",
                "本机的 CA 证书与消息服务不符：确认地址正确，或重新注册本机",
            )
        except ssl.SSLError as exc:
            return Check(name, FAIL, f"{url}: {exc.reason or exc}", refused_fix)
        except OSError as exc:
            return Check(name, FAIL, f"{url}: {exc}", unreachable)
    return Check(name, PASS, f"{url} 可达，已接受本机证书{tls_only}")


def _reader(ctx: _Context) -> Check:
    name = "读卡器 reader"
    reader = ctx.profile.reader
    parts: list[str] = []
    if reader.kind == "sam":
        import serial

        try:
            port = serial.serial_for_url(reader.port, baudrate=reader.baud, timeout=0.2)
            port.close()
        except (serial.SerialException, OSError, ValueError) as exc:
            return Check(
                name,
                FAIL,
                f"{reader.port}: {exc}",
                f"检查身份证读卡器的 USB 线和电源；确认设备出现为 {reader.port}（ls /dev/ttyUSB*）",
            )
        parts.append(f"身份证读卡器 {reader.port} 可打开")
    if ctx.profile.pcsc.enabled:
        try:
            from smartcard.System import readers

            names = [str(r) for r in readers() if ctx.profile.pcsc.reader_filter in str(r)]
        except Exception as exc:  # pyscard raises its own tree and plain errors alike
            return Check(name, FAIL, f"PC/SC: {exc}", "启动 pcscd 服务（pcscd -f）并插好读卡器")
        if not names:
            return Check(
                name, FAIL, "PC/SC 没有找到读卡器", "插好社保卡/银行卡读卡器并确认 pcscd 在运行"
            )
        parts.append(f"PC/SC: {', '.join(names)}")
    if not parts:
        return Check(name, SKIP, "本型号未配读卡器")
    return Check(name, PASS, "；".join(parts))


def _camera(ctx: _Context) -> Check:
    name = "摄像头 camera"
    camera = ctx.profile.camera
    if camera.kind == "none":
        return Check(name, SKIP, "本型号未配摄像头")
    import cv2

    source: int | str = int(camera.source) if camera.source.isdigit() else camera.source
    capture = cv2.VideoCapture(source)
    try:
        ok = capture.isOpened() and capture.read()[0]
    finally:
        capture.release()
    if not ok:
        return Check(
            name,
            FAIL,
            f"无法从 {camera.source} 取得画面",
            "检查摄像头 USB 连接；确认 /dev/video* 存在且未被其他程序占用",
        )
    return Check(name, PASS, f"{camera.source} 可取得画面")


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
) -> list[Check]:
    store = IdentityStore(state_dir)
    if not store.is_enrolled():
        return [
            Check(
                "注册 enrolment",
                FAIL,
                f"{state_dir} 中没有注册信息",
                "先用注册码注册：muster provision enroll --controller HOST:PORT --code CODE",
            )
        ]
    ctx = _Context(store, profile, simulated_seed, clock, clock.now(), timeout_s)
    results = []
    for key, check in CHECKS:
        progress(key)
        try:
            results.append(check(ctx))
        except Exception as exc:  # a check that cannot run is a failure, never a crash
            results.append(Check(key, FAIL, f"检查无法运行：{exc}", "联系技术支持"))
    return results
