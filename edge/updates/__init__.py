"""Software updates on the device: download over the data port, verify, install into the A/B slot
beside the running one, switch atomically, watch health and roll back. May import ``muster``."""
