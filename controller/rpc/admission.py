"""Admission on the mutual-TLS data port: the device id is the verified client certificate's CN
and nothing else, and that exact certificate must still belong to an enrolled, unrevoked
device. Every data-port service (uploads, device health, slices) admits through one gate.
May import: controller.db, muster."""

from __future__ import annotations

import asyncio

import grpc
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Device
from muster.crypto.pki import load_certificate

__all__ = ["DeviceGate", "peer_identity"]


def peer_identity(context: grpc.aio.ServicerContext[object, object]) -> tuple[str, str]:
    """(device id, certificate serial) from the TLS layer's verified client certificate."""
    auth = context.auth_context()
    pem = list(auth.get("x509_pem_cert", ()))
    names = list(auth.get("x509_common_name", ()))
    if not pem or not names:
        return "", ""
    cert = load_certificate(pem[0])
    return names[0].decode(), format(cert.serial_number, "x")


class DeviceGate:
    """Decides whether a connected certificate still belongs to an enrolled, unrevoked device."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def lookup(self, device_id: str, serial: str) -> tuple[bool, bool]:
        """(known, revoked) for this exact certificate."""
        with self._sessions() as session:
            device = session.get(Device, device_id)
            if device is None or device.certificate_serial != serial:
                return False, False
            return True, device.revoked_at is not None

    async def admit(self, context: grpc.aio.ServicerContext[object, object]) -> str:
        device_id, serial = peer_identity(context)
        if not device_id:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "需要设备证书 (client certificate required)"
            )
        known, revoked = await asyncio.to_thread(self.lookup, device_id, serial)
        if not known:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, f"设备 {device_id} 的证书未登记，请重新注册"
            )
        if revoked:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"设备 {device_id} 已被吊销")
        return device_id
