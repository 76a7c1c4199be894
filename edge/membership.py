"""Keeping the device's membership of the fleet current whenever it reaches the controller:
it reports its hardware fingerprint (the controller keeps the history), takes the trust bundle
(during a CA rotation it holds two CAs), and renews its licence before it expires.

Renewal keeps the binding: the controller signs a new window for the same device, township,
profile, enrolled fingerprint and features. A licence that comes back is checked exactly as the
guard checks the one on disk before it replaces it, so a bad answer can never leave the device
worse off than it was.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import grpc
import structlog

from edge.identity import IdentityStore
from edge.licence_guard import LicenceGuard
from muster.clock import Clock
from muster.crypto import licence_public_from_bytes, write_public_file
from muster.crypto.pki import issued_by, load_certificate, load_certificates
from muster.errors import CertificateError, CryptoError, LicenceError
from muster.licence import check_licence, decode_licence
from muster.v1 import data_pb2, data_pb2_grpc, enrollment_pb2

__all__ = ["RENEW_WITHIN", "RETRY_REFUSED_AFTER", "Membership", "open_data_channel"]

log = structlog.get_logger(__name__)

# Ask for a new licence this long before the current one ends.
RENEW_WITHIN = timedelta(days=30)
# After a refusal, do not ask again sooner than this: the answer will not change by itself.
RETRY_REFUSED_AFTER = timedelta(hours=1)
# Reasons the controller cannot cure by renewing. A damaged licence file can be: the controller
# signs the enrolled binding again, so asking costs nothing and gives nothing away.
_NOT_RENEWABLE = {"revoked", "wrong_device", "clock_rollback"}


class Membership:
    def __init__(
        self,
        store: IdentityStore,
        guard: LicenceGuard,
        *,
        renew_within: timedelta = RENEW_WITHIN,
        clock: Clock,
    ) -> None:
        self._store = store
        self._guard = guard
        self._renew_within = renew_within
        self._clock = clock
        self._refused_at: datetime | None = None
        self.last_renewal = ""

    def _fingerprint(self) -> enrollment_pb2.HardwareFingerprint:
        message = enrollment_pb2.HardwareFingerprint()
        for component, digest in self._guard.current_fingerprint().items():
            setattr(message, component, digest)
        return message

    def health_request(self) -> data_pb2.HealthRequest:
        return data_pb2.HealthRequest(fingerprint=self._fingerprint())

    async def after_health(
        self, channel: grpc.aio.Channel, response: data_pb2.HealthResponse
    ) -> None:
        if response.trust_bundle_pem:
            self.take_trust_bundle(response.trust_bundle_pem)
        if self.renewal_due():
            await self.renew(channel)

    def take_trust_bundle(self, bundle: bytes) -> bool:
        """Store a new trust bundle if it still vouches for this device's own certificate."""
        try:
            current = self._store.ca_path.read_bytes()
        except FileNotFoundError:
            current = b""
        if bundle == current:
            return False
        try:
            authorities = load_certificates(bundle)
            own = load_certificate(self._store.cert_path.read_bytes())
        except CertificateError as exc:
            log.warning("trust bundle ignored", error=str(exc))
            return False
        if not any(issued_by(own, authority) for authority in authorities):
            log.warning("trust bundle ignored: it does not hold the CA of this device")
            return False
        write_public_file(self._store.ca_path, bundle)
        log.info("trust bundle updated", authorities=len(authorities))
        return True

    def renewal_due(self) -> bool:
        now = self._clock.now()
        if self._refused_at is not None and now - self._refused_at < RETRY_REFUSED_AFTER:
            return False
        verdict = self._guard.verdict
        if verdict.reason in _NOT_RENEWABLE:
            return False
        if verdict.reason in {"missing", "expired", "not_yet_valid", "tampered"}:
            return True
        blob = self._store.licence()
        if blob is None:
            return True
        try:
            licence = decode_licence(
                blob, licence_public_from_bytes(bytes.fromhex(self._store.pinned_authority_key()))
            )
        except (LicenceError, CryptoError, ValueError):
            return True
        return licence.not_after - now <= self._renew_within

    async def renew(self, channel: grpc.aio.Channel) -> str:
        """Ask for a fresh licence; return what happened in the operator's words."""
        stub = data_pb2_grpc.DeviceStub(channel)
        request = data_pb2.RenewLicenceRequest(fingerprint=self._fingerprint())
        try:
            response: data_pb2.RenewLicenceResponse = await stub.RenewLicence(request, timeout=15)
        except grpc.aio.AioRpcError as error:
            self._refused_at = self._clock.now()
            self.last_renewal = f"续期被拒绝：{error.details()}"
            log.warning("licence renewal refused", code=error.code().name, details=error.details())
            return self.last_renewal
        self.last_renewal = self.install(response.licence, response.licence_authority_key)
        return self.last_renewal

    def install(self, blob: bytes, authority_key: bytes) -> str:
        """Keep a renewed licence only if this device could collect with it right now."""
        enrolment = self._store.enrolment()
        now = self._clock.now()
        try:
            authority = licence_public_from_bytes(authority_key)
            licence = check_licence(
                blob,
                authority=authority,
                device_id=enrolment.device_id,
                fingerprint=self._guard.current_fingerprint(),
                now=now,
            )
        except (LicenceError, CryptoError) as exc:
            self._refused_at = now
            log.warning("renewed licence not usable; keeping the old one", error=str(exc))
            return f"中心返回的授权不可用，仍使用原授权：{exc}"
        if licence.township_code != enrolment.township_code or licence.profile != enrolment.profile:
            self._refused_at = now
            return "中心返回的授权与本机注册的乡镇或型号不符，仍使用原授权。"
        if authority_key.hex() != self._store.pinned_authority_key() or (
            authority_key.hex() != enrolment.licence_authority_key
        ):
            # The authority key was rotated (or enrolment.json was edited): the key that came
            # with this licence over the mutual-TLS channel becomes the pinned anchor, and the
            # old licence is replaced in the same step. Nothing read from a file on the device
            # can do this.
            self._store.rotate_authority_key(authority_key.hex())
        write_public_file(self._store.licence_path, blob)
        self._refused_at = None
        verdict = self._guard.check()
        log.info(
            "licence renewed", not_after=licence.not_after.isoformat(), allowed=verdict.allowed
        )
        return f"授权已续期至 {licence.not_after:%Y-%m-%d}"

    async def renew_now(self) -> str:
        """For the controller's renew-licence command: renew over a channel of our own."""
        self._refused_at = None
        async with open_data_channel(self._store) as channel:
            return await self.renew(channel)


def open_data_channel(store: IdentityStore) -> grpc.aio.Channel:
    """A mutual-TLS channel to the controller's data port with this device's identity."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=store.ca_path.read_bytes(),
        private_key=store.key_path.read_bytes(),
        certificate_chain=store.cert_path.read_bytes(),
    )
    return grpc.aio.secure_channel(store.enrolment().data_endpoint, credentials)
