"""APDUs for the cards read through PC/SC, sans-I/O: commands are built as bytes, responses are
parsed from bytes; nothing here touches a reader, a socket or a clock.

Two applications (``protocols/idcard-sam.md``, "Other cards through PC/SC"):

- **Social security card**: ``SELECT`` by the AID ``sx1.sh.社会保障`` (GBK), then the basic
  information files by ``READ RECORD`` with a short file identifier: EF05 holds the card's own
  data, EF06 the holder's. Each record is one TLV whose tag is the record number (the national
  card specification's layout: 01 card identifier, 02 card type, 03 specification version,
  04 issuing organisation, 05 issue date, 06 expiry, 07 card number; 08 social security number,
  09 name, 0A sex, 0B ethnicity, 0C birthplace, 0D birth date).
- **Bank card (EMV / PBOC)**: ``SELECT`` the PPSE ``2PAY.SYS.DDF01``, ``SELECT`` the application
  it lists first by priority, ``GET PROCESSING OPTIONS`` with the PDOL filled in, and ``READ
  RECORD`` over the AFL; the tags kept are 5A (PAN), 5F20 (holder name), 5F24 (expiry) and
  9F61 (holder ID number).

Errors::

    MusterError
    └── ApduError            a response could not be understood
        ├── StatusWordError  the card answered with a status word other than 90 00 (``sw``)
        └── TlvError         BER-TLV data is malformed

Over 400 lines because it is one protocol read side by side with ``protocols/``: the APDUs, their
status words and the card applications' file layouts belong together, byte for byte.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from muster.errors import MusterError


class ApduError(MusterError):
    """A card's response could not be understood."""


class StatusWordError(ApduError):
    """The card refused a command; ``sw`` is the status word (e.g. 0x6A82 file not found)."""

    def __init__(self, sw: int, message: str) -> None:
        super().__init__(message)
        self.sw = sw


class TlvError(ApduError):
    """BER-TLV data is malformed."""


SW_OK: Final = 0x9000
SW_RECORD_NOT_FOUND: Final = 0x6A83
SW_FILE_NOT_FOUND: Final = 0x6A82
SW_INS_NOT_SUPPORTED: Final = 0x6D00
SW_WRONG_P1P2: Final = 0x6B00

SSC_AID: Final = "sx1.sh.社会保障".encode("gbk")
PPSE: Final = b"2PAY.SYS.DDF01"
SELECT_SSC: Final = bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")


# ---- commands -------------------------------------------------------------------------------


def select_by_name(name: bytes, *, le: bool = False) -> bytes:
    """``SELECT`` by DF name; with ``le`` the card is asked for its FCI (case 4)."""
    if not 1 <= len(name) <= 16:
        raise ValueError(f"a DF name is 1 to 16 bytes, not {len(name)}")
    return bytes((0x00, 0xA4, 0x04, 0x00, len(name))) + name + (b"\x00" if le else b"")


def read_record(record: int, sfi: int, le: int = 0) -> bytes:
    """``READ RECORD`` of record ``record`` in the file with short identifier ``sfi``."""
    if not 1 <= record <= 0xFE or not 1 <= sfi <= 30:
        raise ValueError(f"record {record} / SFI {sfi} out of range")
    return bytes((0x00, 0xB2, record, (sfi << 3) | 0x04, le))


def get_processing_options(pdol_data: bytes) -> bytes:
    """``GET PROCESSING OPTIONS`` with the PDOL data in a tag 83 template."""
    body = bytes((0x83, len(pdol_data))) + pdol_data
    return bytes((0x80, 0xA8, 0x00, 0x00, len(body))) + body + b"\x00"


def get_response(length: int) -> bytes:
    return bytes((0x00, 0xC0, 0x00, 0x00, length & 0xFF))


def split_response(response: bytes) -> tuple[bytes, int]:
    """(data, status word) of a response APDU."""
    if len(response) < 2:
        raise ApduError(f"a response APDU has at least 2 bytes, got {len(response)}")
    return response[:-2], int.from_bytes(response[-2:], "big")


def expect_ok(response: bytes, what: str) -> bytes:
    data, sw = split_response(response)
    if sw != SW_OK:
        raise StatusWordError(sw, f"{what}: 卡片拒绝 / card answered {sw:04X}")
    return data


# ---- BER-TLV --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tlv:
    tag: int
    value: bytes
    children: tuple[Tlv, ...] = ()

    @property
    def constructed(self) -> bool:
        first = self.tag.to_bytes((self.tag.bit_length() + 7) // 8 or 1, "big")[0]
        return bool(first & 0x20)


def parse_tlv(data: bytes) -> tuple[Tlv, ...]:
    """Parse BER-TLV; constructed objects are parsed into ``children``. Padding 00/FF between
    objects is skipped, as EMV allows."""
    out: list[Tlv] = []
    i = 0
    while i < len(data):
        if data[i] in (0x00, 0xFF):
            i += 1
            continue
        start = i
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            while True:
                if i >= len(data):
                    raise TlvError(f"tag at offset {start} runs past the end")
                tag = (tag << 8) | data[i]
                i += 1
                if not data[i - 1] & 0x80:
                    break
                if i - start > 4:
                    raise TlvError(f"tag at offset {start} is longer than 4 bytes")
        if i >= len(data):
            raise TlvError(f"tag {tag:X} has no length")
        length = data[i]
        i += 1
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 3 or i + count > len(data):
                raise TlvError(f"tag {tag:X} has an invalid length field")
            length = int.from_bytes(data[i : i + count], "big")
            i += count
        if i + length > len(data):
            raise TlvError(f"tag {tag:X} claims {length} bytes, {len(data) - i} remain")
        value = data[i : i + length]
        i += length
        children = parse_tlv(value) if data[start] & 0x20 else ()
        out.append(Tlv(tag, value, children))
    return tuple(out)


def find_tag(tlvs: tuple[Tlv, ...], tag: int) -> Tlv | None:
    """The first object with ``tag``, searching depth first."""
    for tlv in tlvs:
        if tlv.tag == tag:
            return tlv
        found = find_tag(tlv.children, tag)
        if found is not None:
            return found
    return None


def find_all(tlvs: tuple[Tlv, ...], tag: int) -> list[Tlv]:
    out: list[Tlv] = []
    for tlv in tlvs:
        if tlv.tag == tag:
            out.append(tlv)
        out.extend(find_all(tlv.children, tag))
    return out


def encode_tlv(tag: int, value: bytes) -> bytes:
    """One BER-TLV object (what a card sends; the virtual card builds its answers with it)."""
    tag_bytes = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    n = len(value)
    if n < 0x80:
        length = bytes((n,))
    elif n <= 0xFF:
        length = bytes((0x81, n))
    else:
        length = b"\x82" + n.to_bytes(2, "big")
    return tag_bytes + length + value


# ---- social security card -------------------------------------------------------------------

SSC_CARD_SFI: Final = 5  # EF05: the card's basic data
SSC_HOLDER_SFI: Final = 6  # EF06: the holder's basic data

# record number -> (SFI, field); the record's TLV tag equals its number.
SSC_RECORDS: Final[dict[int, tuple[int, str]]] = {
    0x01: (SSC_CARD_SFI, "card_id"),
    0x02: (SSC_CARD_SFI, "card_type"),
    0x03: (SSC_CARD_SFI, "version"),
    0x04: (SSC_CARD_SFI, "issuer"),
    0x05: (SSC_CARD_SFI, "issue_date"),
    0x06: (SSC_CARD_SFI, "expiry_date"),
    0x07: (SSC_CARD_SFI, "card_number"),
    0x08: (SSC_HOLDER_SFI, "social_security_number"),
    0x09: (SSC_HOLDER_SFI, "name"),
    0x0A: (SSC_HOLDER_SFI, "sex"),
    0x0B: (SSC_HOLDER_SFI, "ethnicity"),
    0x0C: (SSC_HOLDER_SFI, "birthplace"),
    0x0D: (SSC_HOLDER_SFI, "birth_date"),
}


@dataclass(frozen=True)
class SocialSecurityCard:
    card_number: str
    card_type: str
    version: str
    issuer: str
    issue_date: dt.date | None
    expiry_date: dt.date | None
    social_security_number: str  # the holder's citizen ID number
    name: str
    sex: str  # GB/T 2261.1 code
    ethnicity: str  # GB/T 3304 code, two digits
    birth_date: dt.date | None


def ssc_read_commands() -> list[tuple[int, bytes]]:
    """(record, READ RECORD command) for every basic-information record, in order."""
    return [(record, read_record(record, sfi)) for record, (sfi, _) in SSC_RECORDS.items()]


def _bcd_date(value: bytes, field: str) -> dt.date | None:
    digits = value.hex()
    if not digits.strip("0"):
        return None  # an unset date is all zeros
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError as exc:
        raise ApduError(f"{field}: {digits} is not a BCD date YYYYMMDD") from exc


def _text(value: bytes) -> str:
    return value.rstrip(b"\x00\xff ").decode("gbk", errors="replace").strip()


def parse_ssc_record(record: int, data: bytes) -> bytes:
    """The value of a basic-information record: one TLV whose tag is the record number."""
    tlvs = parse_tlv(data)
    if not tlvs or tlvs[0].tag != record:
        raise ApduError(f"record {record:02X} does not hold tag {record:02X}")
    return tlvs[0].value


def decode_ssc(values: dict[int, bytes]) -> SocialSecurityCard:
    """A :class:`SocialSecurityCard` from the values of the records read, by record number."""

    def get(record: int) -> bytes:
        return values.get(record, b"")

    if not get(0x08) or not get(0x09):
        raise ApduError("社保卡缺少社会保障号码或姓名 / social security number or name missing")
    ethnicity = get(0x0B)
    return SocialSecurityCard(
        card_number=_text(get(0x07)),
        card_type=get(0x02).hex(),
        version=_text(get(0x03)),
        issuer=get(0x04).hex().upper(),
        issue_date=_bcd_date(get(0x05), "issue_date") if get(0x05) else None,
        expiry_date=_bcd_date(get(0x06), "expiry_date") if get(0x06) else None,
        social_security_number=_text(get(0x08)),
        name=_text(get(0x09)),
        sex=_text(get(0x0A)),
        ethnicity=f"{ethnicity[0]:02d}" if ethnicity else "",
        birth_date=_bcd_date(get(0x0D), "birth_date") if get(0x0D) else None,
    )


# ---- EMV bank card --------------------------------------------------------------------------

TAG_AID: Final = 0x4F
TAG_PRIORITY: Final = 0x87
TAG_PDOL: Final = 0x9F38
TAG_AFL: Final = 0x94
TAG_PAN: Final = 0x5A
TAG_TRACK2: Final = 0x57
TAG_HOLDER_NAME: Final = 0x5F20
TAG_EXPIRY: Final = 0x5F24
TAG_HOLDER_ID: Final = 0x9F61

# Terminal data the PDOL may ask for: what an unattended reading terminal truthfully says.
TERMINAL_DATA: Final[dict[int, bytes]] = {
    0x9F66: bytes.fromhex("26000080"),  # TTQ: contact and contactless EMV, online capable
    0x9F02: bytes(6),  # amount authorised: zero, no payment is made
    0x9F03: bytes(6),
    0x9F1A: bytes.fromhex("0156"),  # terminal country: China
    0x5F2A: bytes.fromhex("0156"),  # transaction currency: CNY
    0x9C: b"\x31",  # transaction type: inquiry
    0x9F35: b"\x25",  # terminal type: unattended, offline with online capability
}


@dataclass(frozen=True)
class BankCard:
    aid: bytes
    pan: str
    holder_name: str | None
    expiry: dt.date | None  # the last day of the expiry month
    holder_id_number: str | None


def parse_ppse(fci: bytes) -> list[bytes]:
    """The application AIDs a PPSE lists, highest priority (lowest 87 value) first."""
    entries = []
    for template in find_all(parse_tlv(fci), 0x61):
        aid = find_tag(template.children, TAG_AID)
        if aid is None:
            continue
        priority = find_tag(template.children, TAG_PRIORITY)
        rank = priority.value[0] & 0x0F if priority and priority.value else 0x0F
        entries.append((rank, aid.value))
    if not entries:
        raise ApduError("PPSE 未列出任何应用 / the PPSE lists no application")
    return [aid for _, aid in sorted(entries, key=lambda e: e[0])]


def parse_dol(dol: bytes) -> list[tuple[int, int]]:
    """(tag, length) pairs of a data object list."""
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(dol):
        tag = dol[i]
        i += 1
        if tag & 0x1F == 0x1F:
            while i < len(dol):
                tag = (tag << 8) | dol[i]
                i += 1
                if not dol[i - 1] & 0x80:
                    break
        if i >= len(dol):
            raise TlvError(f"DOL entry {tag:X} has no length")
        out.append((tag, dol[i]))
        i += 1
    return out


def pdol_data(fci: bytes) -> bytes:
    """The data for GET PROCESSING OPTIONS: each PDOL entry from :data:`TERMINAL_DATA`, cut or
    zero-padded to the length asked; entries the terminal does not know are zeros."""
    pdol = find_tag(parse_tlv(fci), TAG_PDOL)
    if pdol is None:
        return b""
    out = b""
    for tag, length in parse_dol(pdol.value):
        value = TERMINAL_DATA.get(tag, b"")
        out += value[:length].rjust(length, b"\x00")
    return out


def parse_gpo(response: bytes) -> bytes:
    """The AFL of a GPO response, format 1 (tag 80: AIP then AFL) or 2 (tag 77 with 94)."""
    tlvs = parse_tlv(response)
    if tlvs and tlvs[0].tag == 0x80:
        if len(tlvs[0].value) < 2:
            raise ApduError("GPO format 1 response is too short for an AIP")
        return tlvs[0].value[2:]
    afl = find_tag(tlvs, TAG_AFL)
    if afl is None:
        raise ApduError("GPO 响应缺少 AFL / the GPO response carries no AFL")
    return afl.value


def parse_afl(afl: bytes) -> list[tuple[int, int]]:
    """(SFI, record) pairs the AFL says to read."""
    if len(afl) % 4:
        raise ApduError(f"an AFL is a multiple of 4 bytes, not {len(afl)}")
    out: list[tuple[int, int]] = []
    for i in range(0, len(afl), 4):
        sfi, first, last = afl[i] >> 3, afl[i + 1], afl[i + 2]
        if not 1 <= sfi <= 30 or first == 0 or last < first:
            raise ApduError(f"AFL entry {afl[i : i + 4].hex()} is invalid")
        out.extend((sfi, record) for record in range(first, last + 1))
    return out


def _expiry(value: bytes) -> dt.date | None:
    digits = value.hex()
    if len(digits) != 6 or not digits.isdigit():
        return None
    year, month = 2000 + int(digits[:2]), int(digits[2:4])
    if not 1 <= month <= 12:
        return None
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return following - dt.timedelta(days=1)


def decode_bank_card(aid: bytes, records: list[bytes]) -> BankCard:
    """A :class:`BankCard` from the records read; the PAN falls back to track 2 equivalent."""
    tlvs: tuple[Tlv, ...] = ()
    for record in records:
        tlvs += parse_tlv(record)
    pan_tlv = find_tag(tlvs, TAG_PAN)
    if pan_tlv is not None:
        pan = pan_tlv.value.hex().upper().rstrip("F")
    else:
        track2 = find_tag(tlvs, TAG_TRACK2)
        if track2 is None:
            raise ApduError("银行卡记录中没有卡号 / no PAN in the card's records")
        pan = track2.value.hex().upper().split("D")[0]
    name = find_tag(tlvs, TAG_HOLDER_NAME)
    expiry = find_tag(tlvs, TAG_EXPIRY)
    holder_id = find_tag(tlvs, TAG_HOLDER_ID)
    return BankCard(
        aid=aid,
        pan=pan,
        holder_name=_text(name.value).strip() or None if name else None,
        expiry=_expiry(expiry.value) if expiry else None,
        holder_id_number=_text(holder_id.value) or None if holder_id else None,
    )


def masked_pan(pan: str) -> str:
    """The PAN as it may be shown or logged: first 6 and last 4 digits."""
    return pan[:6] + "*" * max(0, len(pan) - 10) + pan[-4:] if len(pan) > 10 else "*" * len(pan)
