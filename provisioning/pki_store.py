"""Moved to :mod:`controller.pki_store` (the centre's key store); this name goes once every
importer uses the new one."""

from controller.pki_store import *  # noqa: F403
