"""``muster controller broker-config``: the files a local Mosquitto needs to stand in front of
this controller in the production shape (README, "Against Mosquitto"): a server certificate
from the controller's CA, the device ACL, and a configuration with the devices' listener (client
id bound to the certificate) and the centre's listener (the controller's own ids)."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from controller.cli.options import data_dir_option, settings_for
from muster.clock import SystemClock

__all__ = ["broker_config", "mosquitto_conf"]

ACL = (
    "# %u is the certificate's CN: a device writes only under its own id, reads its commands.\n"
    "pattern write muster/v1/dev/%u/#\n"
    "pattern read muster/v1/dev/%u/cmd\n"
    "user {controller}\n"
    "topic read muster/v1/dev/+/#\n"
    "topic write muster/v1/dev/+/cmd\n"
)


def mosquitto_conf(
    out: Path,
    *,
    cafile: Path,
    crlfile: Path,
    host: str,
    device_port: int,
    centre_port: int,
    user: str,
) -> str:
    lines = [
        f"user {user}",
        "per_listener_settings true",
        "persistence true",
        f"persistence_location {out}/",
        f"pid_file {out}/mosquitto.pid",
        f"log_dest file {out}/mosquitto.log",
    ]
    for port, bind_client_id in ((device_port, True), (centre_port, False)):
        lines += [
            "",
            f"listener {port} {host}",
            f"cafile {cafile}",
            f"certfile {out}/server.crt",
            f"keyfile {out}/server.key",
            f"crlfile {crlfile}",
            "require_certificate true",
            "use_identity_as_username true",
            # The devices' listener only: one device must not take another's session.
            *(["use_username_as_clientid true"] if bind_client_id else []),
            "allow_anonymous false",
            f"acl_file {out}/muster.acl",
        ]
    return "\n".join(lines) + "\n"


@click.command("broker-config")
@data_dir_option
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("var/broker"),
    show_default=True,
    help="directory for mosquitto.conf, the ACL, the broker's certificate and its data",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="address both listeners bind")
@click.option("--device-port", default=8883, show_default=True, help="the devices' TLS listener")
@click.option("--centre-port", default=8884, show_default=True, help="the controller's listener")
def broker_config(
    data_dir: Path | None, out: Path, host: str, device_port: int, centre_port: int
) -> None:
    """Write a Mosquitto configuration for this controller (creating its keys if needed)."""
    from controller.db import open_database
    from controller.devices.pki_store import CONTROLLER_MQTT_IDENTITY, ensure_controller_pki
    from controller.devices.revocation import write_crl
    from muster.crypto import write_private_key, write_public_file
    from muster.crypto.pki import certificate_pem, issue_server_certificate

    if device_port == centre_port:
        raise click.BadParameter(
            "give the two listeners different ports", param_hint="--centre-port"
        )
    settings = settings_for(data_dir, None)
    now = SystemClock().now()
    hosts = list(dict.fromkeys([host, *settings.public_hostnames]))
    pki = ensure_controller_pki(settings.data_dir, hosts, now=now)
    out = out.resolve()
    key, cert = issue_server_certificate(pki.ca_key, pki.ca_cert, hosts, now=now)
    write_private_key(out / "server.key", key)
    write_public_file(out / "server.crt", certificate_pem(cert))
    with open_database(settings) as sessions:
        crl = write_crl(sessions, pki, now=now)
    (out / "muster.acl").write_text(ACL.format(controller=CONTROLLER_MQTT_IDENTITY))
    conf = mosquitto_conf(
        out,
        cafile=pki.trust_bundle_path.resolve(),
        crlfile=crl.resolve(),
        host=host,
        device_port=device_port,
        centre_port=centre_port,
        user=getpass.getuser(),
    )
    (out / "mosquitto.conf").write_text(conf)
    click.echo(f"Mosquitto 配置 configuration: {out / 'mosquitto.conf'} (CRL {crl})")
    click.echo(
        f"中心 controller: --mqtt-url mqtts://{host}:{centre_port} "
        f"--device-mqtt-url mqtts://{host}:{device_port}"
    )
