"""The technician's toolbox on a device: enrol (by hand or from a QR code), self-test through the
daemon's own adapters, outbox export/import. Built on ``edge`` and ``muster`` only."""
