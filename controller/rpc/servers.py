"""The controller's two gRPC servers: Enrollment alone on the server-TLS port; Uploads, Device and
Slices on the mutual-TLS port, where the device id is the verified client certificate's CN."""

from __future__ import annotations

import grpc
import structlog
from sqlalchemy.orm import Session, sessionmaker

from controller.devices.enrolment import Enroller
from controller.devices.licences import LicenceDesk
from controller.devices.pki_store import ControllerPki
from controller.records.ingest import Ingestor
from controller.rpc.admission import DeviceGate
from controller.rpc.decode_guard import DecodeGuard
from controller.rpc.device_service import DeviceService
from controller.rpc.enrolment_service import EnrollmentService
from controller.rpc.slices_service import SlicesService
from controller.rpc.update_service import UpdatesService
from controller.rpc.upload_service import UploadsService
from controller.settings import ControllerSettings
from muster.clock import Clock
from muster.v1 import data_pb2_grpc, enrollment_pb2_grpc, updates_pb2_grpc

__all__ = ["build_servers"]

log = structlog.get_logger(__name__)

_MAX_MESSAGE = 16 * 1024 * 1024
_SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


def build_servers(
    settings: ControllerSettings,
    pki: ControllerPki,
    sessions: sessionmaker[Session],
    enroller: Enroller,
    ingestor: Ingestor,
    clock: Clock,
) -> tuple[grpc.aio.Server, grpc.aio.Server]:
    key_pem = pki.server_key_path.read_bytes()
    cert_pem = pki.server_cert_path.read_bytes()
    # Every CA still honoured (two of them during a rotation), not only the issuing one.
    ca_pem = pki.trust_bundle_pem or pki.ca_cert_path.read_bytes()

    enrol = grpc.aio.server(options=_SERVER_OPTIONS, interceptors=[DecodeGuard()])
    enrollment_pb2_grpc.add_EnrollmentServicer_to_server(EnrollmentService(enroller), enrol)
    enrol.add_secure_port(
        f"{settings.bind_host}:{settings.enrol_port}",
        grpc.ssl_server_credentials([(key_pem, cert_pem)]),
    )

    gate = DeviceGate(sessions)
    data = grpc.aio.server(options=_SERVER_OPTIONS, interceptors=[DecodeGuard()])
    data_pb2_grpc.add_UploadsServicer_to_server(
        UploadsService(gate, ingestor, settings.upload_batch), data
    )
    licences = LicenceDesk(
        sessions, pki.licence_key, licence_days=settings.licence_days, clock=clock
    )
    data_pb2_grpc.add_DeviceServicer_to_server(
        DeviceService(gate, sessions, clock, licences=licences, trust_bundle_pem=ca_pem), data
    )
    data_pb2_grpc.add_SlicesServicer_to_server(
        SlicesService(gate, sessions, pki.licence_key, clock), data
    )
    updates_pb2_grpc.add_UpdatesServicer_to_server(
        UpdatesService(gate, sessions, settings.data_dir, pki.directory, clock), data
    )
    data.add_secure_port(
        f"{settings.bind_host}:{settings.data_port}",
        grpc.ssl_server_credentials(
            [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True
        ),
    )
    return enrol, data
