"""The 256-byte text block of an ID card, both ways (decode for the reader, encode for the
simulator and the tests). Sans-I/O: bytes in, a :class:`CardText` out.

All fields are UCS-2 little-endian padded with spaces. The card-type flag at byte 248 picks the
layout. The resident card's layout is in ``protocols/idcard-sam.md``; the three others come
from the module vendors' published SDK headers, which agree with one another:

=====================  =========================================================================
resident card (flag    name 0/30, sex 30/2, ethnicity 32/4, birth 36/16, address 52/70,
space)                 ID number 122/36, authority 158/30, valid from 188/16, valid to 204/16
``J`` HK/Macao/Taiwan  name 0/30, sex 30/2, (4), birth 36/16, address 52/70, ID number 122/36,
residence permit       authority 158/30, valid from 188/16, valid to 204/16, travel permit
                       number 220/18, issue count 238/4
``I`` foreigner's      English name 0/120, sex 120/2, number 122/30, nationality 152/6,
permanent residence    Chinese name 158/30, valid from 188/16, valid to 204/16, birth 220/16,
card, 2017             card version 236/4, issuing office code 240/8
``Y`` foreigner's      Chinese name 0/30, sex 30/2, renewal count 32/4, birth 36/16, English
permanent residence    name 52/70 (+ 220/22 continued), number 122/36, valid from 188/16,
card, 2023             valid to 204/16, nationality 242/6
=====================  =========================================================================
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Final

from edge.drivers.sam.errors import CardDataError, UnsupportedCardError
from muster.forms.codelists import ETHNICITIES as _ETHNICITIES
from muster.idnumbers import CardType as CardType  # re-exported: the decoder names the layout

TEXT_LEN: Final = 256
FLAG_OFFSET: Final = 248
NO_EXPIRY: Final = "长期"

# GB/T 3304 ethnicity codes as printed on the card; the forms share the same table.
ETHNICITIES: Final[dict[str, str]] = _ETHNICITIES


class Sex(enum.Enum):
    """GB/T 2261.1 sex codes."""

    UNKNOWN = "0"
    MALE = "1"
    FEMALE = "2"
    UNSPECIFIED = "9"

    @property
    def label(self) -> str:
        return _SEX_LABELS[self]


_SEX_LABELS: Final[dict[Sex, str]] = {
    Sex.UNKNOWN: "未知",
    Sex.MALE: "男",
    Sex.FEMALE: "女",
    Sex.UNSPECIFIED: "未说明",
}


@dataclass(frozen=True)
class Ethnicity:
    code: str
    name: str


@dataclass(frozen=True)
class CardText:
    """What a card's text block says. Fields a card type does not carry are None."""

    card_type: CardType
    name: str
    sex: Sex
    birth_date: dt.date
    id_number: str
    valid_from: dt.date
    valid_to: dt.date | None  # None: 长期, no expiry
    ethnicity: Ethnicity | None = None
    address: str | None = None
    authority: str | None = None
    english_name: str | None = None
    nationality: str | None = None  # ISO 3166-1 alpha-3, foreigners' cards
    permit_number: str | None = None  # HK/Macao/Taiwan travel permit number
    issue_count: int | None = None  # times issued (J) or renewed (Y)
    card_version: str | None = None  # foreigner's card 2017


# (field, offset, bytes) per layout; fields named as CardText attributes where they map to one.
_Layout = tuple[tuple[str, int, int], ...]

LAYOUTS: Final[dict[CardType, _Layout]] = {
    CardType.RESIDENT: (
        ("name", 0, 30), ("sex", 30, 2), ("ethnicity", 32, 4), ("birth_date", 36, 16),
        ("address", 52, 70), ("id_number", 122, 36), ("authority", 158, 30),
        ("valid_from", 188, 16), ("valid_to", 204, 16),
    ),
    CardType.HMT_RESIDENCE_PERMIT: (
        ("name", 0, 30), ("sex", 30, 2), ("birth_date", 36, 16), ("address", 52, 70),
        ("id_number", 122, 36), ("authority", 158, 30), ("valid_from", 188, 16),
        ("valid_to", 204, 16), ("permit_number", 220, 18), ("issue_count", 238, 4),
    ),
    CardType.FOREIGN_PERMANENT_2017: (
        ("english_name", 0, 120), ("sex", 120, 2), ("id_number", 122, 30),
        ("nationality", 152, 6), ("name", 158, 30), ("valid_from", 188, 16),
        ("valid_to", 204, 16), ("birth_date", 220, 16), ("card_version", 236, 4),
        ("authority", 240, 8),
    ),
    CardType.FOREIGN_PERMANENT_2023: (
        ("name", 0, 30), ("sex", 30, 2), ("issue_count", 32, 4), ("birth_date", 36, 16),
        ("english_name", 52, 70), ("id_number", 122, 36), ("valid_from", 188, 16),
        ("valid_to", 204, 16), ("english_name_more", 220, 22), ("nationality", 242, 6),
    ),
}  # fmt: skip

_DATE_FIELDS: Final = frozenset({"birth_date", "valid_from", "valid_to"})


def _text(raw: bytes, field: str) -> str:
    try:
        value = raw.decode("utf-16-le")
    except UnicodeDecodeError as exc:
        raise CardDataError(
            f"字段 {field} 不是有效的 UCS-2 文本 / field {field} is not UCS-2"
        ) from exc
    return value.rstrip(" \x00")


def _date(value: str, field: str, *, open_ended: bool = False) -> dt.date | None:
    if open_ended and value == NO_EXPIRY:
        return None
    if len(value) != 8 or not value.isascii() or not value.isdigit():
        raise CardDataError(
            f"字段 {field} 不是 YYYYMMDD 日期: {value!r} / field {field} is no date"
        )
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError as exc:
        raise CardDataError(f"字段 {field} 日期不存在: {value} / impossible date") from exc


def card_type_of(block: bytes) -> CardType:
    """The layout the block uses, or :class:`UnsupportedCardError` naming an unknown flag."""
    if len(block) != TEXT_LEN:
        raise CardDataError(f"文字信息应为 {TEXT_LEN} 字节，收到 {len(block)} / text block size")
    flag = _text(block[FLAG_OFFSET : FLAG_OFFSET + 2], "card_type") or " "
    try:
        return CardType(flag)
    except ValueError:
        raise UnsupportedCardError(
            flag,
            f"不支持的证件类型标识 {flag!r}，无法解析 / unsupported card-type flag {flag!r}",
        ) from None


def decode_text_block(block: bytes) -> CardText:
    """Decode a 256-byte text block into a :class:`CardText`; raises :class:`CardDataError`."""
    card_type = card_type_of(block)
    raw = {name: _text(block[off : off + size], name) for name, off, size in LAYOUTS[card_type]}

    try:
        sex = Sex(raw["sex"])
    except ValueError:
        raise CardDataError(f"性别代码无效: {raw['sex']!r} / invalid sex code") from None
    ethnicity = None
    if "ethnicity" in raw:
        code = raw["ethnicity"]
        if code not in ETHNICITIES:
            raise CardDataError(f"民族代码无效: {code!r} / invalid GB/T 3304 code")
        ethnicity = Ethnicity(code, ETHNICITIES[code])
    issue_count = None
    if raw.get("issue_count"):
        if not raw["issue_count"].isdigit():
            raise CardDataError(f"签发次数无效: {raw['issue_count']!r} / invalid issue count")
        issue_count = int(raw["issue_count"])
    birth = _date(raw["birth_date"], "birth_date")
    valid_from = _date(raw["valid_from"], "valid_from")
    assert birth is not None and valid_from is not None  # only valid_to may be open-ended
    english = raw.get("english_name")
    if english is not None and raw.get("english_name_more"):
        english += raw["english_name_more"]
    if not raw["id_number"]:
        raise CardDataError("证件号码为空 / the card carries no ID number")
    return CardText(
        card_type=card_type,
        name=raw["name"],
        sex=sex,
        birth_date=birth,
        id_number=raw["id_number"],
        valid_from=valid_from,
        valid_to=_date(raw["valid_to"], "valid_to", open_ended=True),
        ethnicity=ethnicity,
        address=raw.get("address"),
        authority=raw.get("authority") or None,
        english_name=english or None,
        nationality=raw.get("nationality") or None,
        permit_number=raw.get("permit_number") or None,
        issue_count=issue_count,
        card_version=raw.get("card_version") or None,
    )


def decode_address(block: bytes) -> str:
    """The appended address (new address read): UCS-2 LE, space padded."""
    return _text(block, "new_address")


def _put(out: bytearray, value: str, offset: int, size: int, field: str) -> None:
    encoded = value.encode("utf-16-le")
    if len(encoded) > size:
        raise ValueError(f"{field} {value!r} needs {len(encoded)} bytes, the card has {size}")
    out[offset : offset + size] = encoded + " ".encode("utf-16-le") * ((size - len(encoded)) // 2)


def _field_value(card: CardText, name: str) -> str:
    if name in _DATE_FIELDS:
        value = getattr(card, name)
        return NO_EXPIRY if value is None else f"{value:%Y%m%d}"
    if name == "sex":
        return card.sex.value
    if name == "ethnicity":
        return card.ethnicity.code if card.ethnicity else ""
    if name == "issue_count":
        return "" if card.issue_count is None else f"{card.issue_count:02d}"
    if name in ("english_name", "english_name_more"):
        english = card.english_name or ""
        return english[:35] if name == "english_name" else english[35:]
    value = getattr(card, name)
    return "" if value is None else str(value)


def encode_text_block(card: CardText) -> bytes:
    """The 256-byte block a chip of ``card.card_type`` would hold for ``card``."""
    out = bytearray(" ".encode("utf-16-le") * (TEXT_LEN // 2))
    for name, offset, size in LAYOUTS[card.card_type]:
        _put(out, _field_value(card, name), offset, size, name)
    if card.card_type is not CardType.RESIDENT:
        _put(out, card.card_type.value, FLAG_OFFSET, 2, "card_type")
    return bytes(out)


def ethnicity(code: str) -> Ethnicity:
    """The :class:`Ethnicity` of GB/T 3304 ``code``; ValueError for a code the standard lacks."""
    if code not in ETHNICITIES:
        raise ValueError(f"{code!r} is not a GB/T 3304 ethnicity code")
    return Ethnicity(code, ETHNICITIES[code])
