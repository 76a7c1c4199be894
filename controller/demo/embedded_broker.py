"""An in-process MQTT broker (amqtt) for the demo and for one-machine trials. Production uses
Mosquitto (one site) or an EMQX cluster (national scale) on the same topics."""

from __future__ import annotations

import logging

from amqtt.broker import Broker


class EmbeddedBroker:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.url = f"mqtt://{host}:{port}"
        self._broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
                # Loopback only, so anonymous is acceptable here; Mosquitto with client
                # certificates and an ACL is the production path.
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )

    async def start(self) -> None:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)
        await self._broker.start()

    async def stop(self) -> None:
        await self._broker.shutdown()
