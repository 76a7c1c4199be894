"""What the device and the controller share: the wire contract (``muster.v1``), sealing and
signing (``muster.crypto``), the record model, settings and the command-line root."""

__version__ = "0.1.0"
__all__ = ["__version__"]
