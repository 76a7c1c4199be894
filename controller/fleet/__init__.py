"""What the fleet is doing: telemetry applied as it arrives, silence found by sweeping, the rules
that turn both into states and alerts, commands to devices. May import ``db``, ``devices.pki_store``."""
