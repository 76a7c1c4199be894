"""Clerk passwords: hashed on the controller with scrypt (a slow, memory-hard KDF), verified on
the device. Sans-I/O; the salt comes from the caller so tests are reproducible.

The encoded form is ``scrypt$N$r$p$salt_hex$hash_hex``: the parameters travel with the hash so
they can be raised later without invalidating accounts already handed out.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from muster.errors import ConfigError

__all__ = ["PasswordPolicyError", "check_password_policy", "hash_password", "verify_password"]

_N, _R, _P = 2**14, 8, 1
_LEN = 32


class PasswordPolicyError(ConfigError):
    """A new password is too weak; the message says what to choose instead."""


def check_password_policy(password: str) -> None:
    if len(password) < 8:
        raise PasswordPolicyError("密码至少8位，请使用字母和数字的组合")
    if password.isdigit() or password.isalpha():
        raise PasswordPolicyError("密码须同时包含字母和数字")


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_LEN)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches; False for a wrong password or a malformed hash."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=256 * 1024 * 1024,
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)
