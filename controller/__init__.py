"""The central controller: gRPC for devices, the telemetry consumer, the admin web app, and the
rooms below them. Imports ``muster`` only, never ``edge`` or ``provisioning``."""
