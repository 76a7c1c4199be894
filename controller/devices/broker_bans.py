"""The broker's half of revocation: close a revoked device's live MQTT session and keep it shut.

Mosquitto (2.0.x) checks the CRL only when a connection is made, so a session opened before the
revocation stays up after the CRL is re-read. Its dynamic-security plugin can close one: a client
it knows that is disabled (``disableClient``) is disconnected at once, by user name, which is the
certificate's CN (``use_identity_as_username``), i.e. the device id. So for each revoked device
the controller sends, on ``$CONTROL/dynamic-security/v1``:

- ``createClient`` with the ``muster-revoked`` role (deny everything) — once the plugin knows the
  device, its roles decide every publish and subscribe instead of the ACL file, so even a
  reconnect the CRL does not stop (a remote broker not yet reloaded) can do nothing;
- ``addClientRole`` (in case the client existed without the role);
- ``disableClient``, which kicks its live session.

The plugin keeps this in its own file (``plugin_opt_config_file``), so bans survive a broker
restart. Devices the plugin does not know (every enrolled, non-revoked device) fall through to
the ACL file's patterns (``%u``), which confine each to its own topics: 2.0.x's plugin has no
such patterns, and one role per device would be a second copy of the device table to keep in
step. The controller's identity holds the only role allowed on ``$CONTROL``.

``dynsec_config`` writes the plugin's starting file (README, "Against Mosquitto").
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import structlog

from controller.devices.pki_store import ControllerPki
from muster.crypto import write_public_file
from muster.mqtt import client_tls_context, parse_broker_url

__all__ = [
    "ADMIN_ROLE",
    "CONTROL_TOPIC",
    "REVOKED_ROLE",
    "BrokerBans",
    "ban_commands",
    "dynsec_config",
    "write_dynsec_config",
]

log = structlog.get_logger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
REVOKED_ROLE = "muster-revoked"
ADMIN_ROLE = "muster-broker-admin"
# Devices per control message: one message stays small (three commands each) and the broker
# answers it in one response.
BATCH = 50
_ACL_TYPES = ("publishClientSend", "publishClientReceive", "subscribePattern")


def dynsec_config(controller_identity: str) -> dict[str, Any]:
    """The plugin's starting state: no default access (unknown clients fall through to the ACL
    file), the controller's certificate identity as its only administrator, the deny-all role."""
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": [{"username": controller_identity, "roles": [{"rolename": ADMIN_ROLE}]}],
        "groups": [],
        "roles": [
            {
                "rolename": ADMIN_ROLE,
                "acls": [
                    {"acltype": kind, "topic": "$CONTROL/dynamic-security/#", "allow": True}
                    for kind in _ACL_TYPES
                ],
            },
            {
                "rolename": REVOKED_ROLE,
                "acls": [{"acltype": kind, "topic": "#", "allow": False} for kind in _ACL_TYPES],
            },
        ],
    }


def write_dynsec_config(path: Path, controller_identity: str) -> Path:
    """Write the starting file for ``plugin_opt_config_file`` (the broker rewrites it later)."""
    write_public_file(path, json.dumps(dynsec_config(controller_identity), indent=2).encode())
    return path


def ban_commands(device_id: str) -> list[dict[str, Any]]:
    """The three commands that ban one device; each is harmless if it was banned before."""
    role = [{"rolename": REVOKED_ROLE}]
    return [
        {"command": "createClient", "username": device_id, "roles": role},
        {"command": "addClientRole", "username": device_id, "rolename": REVOKED_ROLE},
        {"command": "disableClient", "username": device_id, "correlationData": device_id},
    ]


class BrokerBans:
    """Sends bans over a short-lived connection on the centre's listener, as the controller's
    identity with a client id of its own (replicas never push each other off)."""

    def __init__(
        self, mqtt_url: str, pki: ControllerPki | None, *, timeout_s: float = 10.0
    ) -> None:
        self._address = parse_broker_url(mqtt_url)
        self._pki = pki
        self._timeout = timeout_s

    async def ban(self, device_ids: Iterable[str]) -> set[str]:
        """Ban the devices; return those whose ``disableClient`` the broker confirmed. Raises
        ``aiomqtt.MqttError`` or ``TimeoutError`` when the broker cannot be reached or does not
        answer (no plugin): the caller tries again later."""
        pending = sorted(set(device_ids))
        if not pending:
            return set()
        tls = None
        if self._address.tls and self._pki is not None:
            tls = client_tls_context(
                self._pki.ca_cert_path, self._pki.client_cert_path, self._pki.client_key_path
            )
        confirmed: set[str] = set()
        async with (
            asyncio.timeout(self._timeout),
            aiomqtt.Client(
                self._address.host,
                self._address.port,
                identifier=f"muster-controller-bans-{uuid.uuid4().hex[:8]}",
                tls_context=tls,
            ) as client,
        ):
            await client.subscribe(RESPONSE_TOPIC, qos=1)
            for start in range(0, len(pending), BATCH):
                batch = pending[start : start + BATCH]
                commands = [c for device_id in batch for c in ban_commands(device_id)]
                await client.publish(CONTROL_TOPIC, json.dumps({"commands": commands}), qos=1)
                async for message in client.messages:
                    if str(message.topic) != RESPONSE_TOPIC:
                        continue
                    confirmed |= _disabled(message.payload, batch)
                    break
        return confirmed


def _disabled(payload: object, batch: Sequence[str]) -> set[str]:
    if not isinstance(payload, bytes | bytearray):
        return set()
    try:
        responses = json.loads(payload).get("responses", [])
    except (ValueError, AttributeError):
        return set()
    done: set[str] = set()
    for response in responses:
        if not isinstance(response, dict) or response.get("command") != "disableClient":
            continue
        device_id = response.get("correlationData")
        if not isinstance(device_id, str) or device_id not in batch:
            continue
        if not response.get("error"):
            done.add(device_id)
        else:
            log.warning("broker refused a ban", device_id=device_id, error=response["error"])
    return done
