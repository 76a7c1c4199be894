"""The ``muster`` command. Subcommands live with the package that owns them and load lazily, so
``muster edge ...`` on a device never imports the controller and vice versa."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from muster import __version__

__all__ = ["LazyGroup", "cli", "main", "provision", "sim"]


class LazyGroup(click.Group):
    """A click group whose subcommands are ``"module:attribute"`` strings imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attr = self._lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self._lazy[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy={
        "edge": "edge.cli:edge",
        "controller": "controller.cli.service:controller",
        "provision": "muster.cli:provision",
        "demo": "controller.demo.run:demo",
        "sim": "muster.cli:sim",
    },
)
@click.version_option(__version__, prog_name="muster")
def cli() -> None:
    """muster: 优抚对象信息采集 — collection devices and their central controller."""


@click.group(
    cls=LazyGroup,
    lazy={
        "idcard": "edge.simulators.idcard_cli:idcard",
        "camera": "edge.simulators.camera_cli:camera",
        "fleet": "edge.simulators.fleet_cli:fleet",
        "dataset": "muster.dataset_cli:dataset",
        "department": "muster.department_sim_cli:department",
        "extract": "muster.extract_cli:extract",
    },
)
def sim() -> None:
    """Simulators that speak the real protocols on real transports."""


@click.group(
    cls=LazyGroup,
    lazy={
        # on the controller host
        "code": "controller.cli.provision:code",
        "revoke": "controller.cli.provision:revoke_command",
        "crl": "controller.cli.provision:crl_command",
        "replace": "controller.cli.provision:replace_command",
        "rotate": "controller.cli.provision:rotate",
        # on the device
        "enroll": "provisioning.cli:enroll_command",
        "selftest": "provisioning.cli:selftest_command",
        "import-outbox": "provisioning.cli:import_outbox_command",
        # wherever the old disk is
        "export-outbox": "provisioning.cli:export_outbox_command",
    },
)
def provision() -> None:
    """Enrolment codes, device enrolment, self-test, revocation, replacement and key rotation.

    \b
    On the controller host:  code create, revoke, replace, rotate ca|licence-key, crl
    On the device:           enroll, selftest, import-outbox
    Wherever the old disk is: export-outbox
    """


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
