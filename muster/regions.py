"""Region codes: the 12-digit statistical division code (province 2, city 2, county 2,
township 3, village 3). A device belongs to one township; admins are scoped by a code prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass

from muster.errors import ConfigError

_TOWNSHIP = re.compile(r"^\d{9}0{3}$|^\d{12}$")


@dataclass(frozen=True, slots=True)
class RegionCode:
    code: str

    @property
    def province(self) -> str:
        return self.code[:2]

    @property
    def city(self) -> str:
        return self.code[:4]

    @property
    def county(self) -> str:
        return self.code[:6]

    @property
    def township(self) -> str:
        return self.code[:9]


def parse_township(code: str) -> RegionCode:
    """Accept a township as 9 digits or as the 12-digit code ending in 000."""
    code = code.strip()
    if re.fullmatch(r"\d{9}", code):
        code += "000"
    if not _TOWNSHIP.fullmatch(code) or code[9:] != "000" or code[6:9] == "000":
        raise ConfigError(
            f"township code {code!r} is not a 12-digit township code "
            "(9 digits of province/city/county/township followed by 000, e.g. 370902001000)"
        )
    if code[:2] in {"00"} or code[2:4] == "00":
        raise ConfigError(f"township code {code!r} names no province or city")
    return RegionCode(code)
