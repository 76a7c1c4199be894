"""The device's hardware, each protocol sans-I/O (bytes in, events out) with a thin adapter: the
serial SAM ID-card reader, PC/SC cards, the camera. Imports ``muster`` only."""
