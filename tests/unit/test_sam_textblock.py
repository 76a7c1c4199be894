"""Decoding the card's 256-byte text block, every layout, against tests/vectors/sam/textblocks.json."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from edge.drivers.sam import errors
from edge.drivers.sam.textblock import (
    ETHNICITIES,
    CardType,
    Sex,
    decode_address,
    decode_text_block,
    encode_text_block,
)
from edge.simulators.idcard import CARDS_DIR, load_card

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent.parent / "vectors" / "sam" / "textblocks.json").read_text(
        encoding="utf-8"
    )
)


def _expected_value(field: str, value: Any) -> Any:
    if field in ("birth_date", "valid_from", "valid_to") and value is not None:
        return dt.date.fromisoformat(value)
    if field == "sex":
        return Sex[value]
    return value


@pytest.mark.parametrize("vector", VECTORS["cards"], ids=lambda v: v["name"])
def test_text_block_vectors_decode(vector: dict[str, Any]) -> None:
    """Each layout decodes every field at its offset; 长期 becomes no expiry (None)."""
    card = decode_text_block(bytes.fromhex(vector["block"]))
    assert card.card_type is CardType[vector["card_type"]]
    for field, expected in vector["expect"].items():
        actual = getattr(card, field)
        if field == "ethnicity":
            actual = None if actual is None else [actual.code, actual.name]
        assert actual == _expected_value(field, expected), field


@pytest.mark.parametrize("vector", VECTORS["cards"], ids=lambda v: v["name"])
def test_encoding_reproduces_the_vector_bytes(vector: dict[str, Any]) -> None:
    """The simulator's encoder writes the same 256 bytes the vector lays out by hand."""
    block = bytes.fromhex(vector["block"])
    assert encode_text_block(decode_text_block(block)) == block


@pytest.mark.parametrize("vector", VECTORS["rejects"], ids=lambda v: v["name"])
def test_bad_blocks_raise_card_data_errors(vector: dict[str, Any]) -> None:
    """A block with an unknown flag, code or date raises its precise error, never garbage."""
    with pytest.raises(getattr(errors, vector["error"])):
        decode_text_block(bytes.fromhex(vector["block"]))


def test_unknown_flag_is_named_in_the_error() -> None:
    """An unsupported card type reports its flag so the operator knows what was presented."""
    block = bytes.fromhex(VECTORS["rejects"][0]["block"])
    with pytest.raises(errors.UnsupportedCardError) as caught:
        decode_text_block(block)
    assert caught.value.flag == "X"
    assert "'X'" in str(caught.value)


def test_wrong_block_size_and_broken_ucs2_are_card_data_errors() -> None:
    """A block that is not 256 bytes, or holds a lone surrogate, raises CardDataError."""
    with pytest.raises(errors.CardDataError):
        decode_text_block(b" \x00" * 100)
    block = bytearray(bytes.fromhex(VECTORS["cards"][0]["block"]))
    block[0:2] = b"\x00\xd8"  # a high surrogate with nothing after it
    with pytest.raises(errors.CardDataError):
        decode_text_block(bytes(block))


def test_ethnicity_table_covers_gbt3304() -> None:
    """All 56 ethnic groups are coded 01..56, plus 97 and 98, with 01 汉 and 56 基诺."""
    assert [f"{i:02d}" for i in range(1, 57)] == [c for c in ETHNICITIES if int(c) <= 56]
    assert ETHNICITIES["01"] == "汉" and ETHNICITIES["56"] == "基诺"
    assert len(set(ETHNICITIES.values())) == len(ETHNICITIES)


def test_sex_codes_follow_gbt2261() -> None:
    """Sex codes 0, 1, 2, 9 mean unknown, male, female, unspecified."""
    assert [s.label for s in (Sex("0"), Sex("1"), Sex("2"), Sex("9"))] == [
        "未知",
        "男",
        "女",
        "未说明",
    ]


@pytest.mark.parametrize("path", sorted(CARDS_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_sample_cards_round_trip(path: Path) -> None:
    """Every shipped sample card survives encode then decode unchanged."""
    card = load_card(path)
    assert decode_text_block(encode_text_block(card.text)) == card.text


def test_new_address_decodes_and_strips_padding() -> None:
    """The appended-address block is UCS-2 padded with spaces, returned without the padding."""
    raw = "云南省泸西县".encode("utf-16-le") + b" \x00" * 29
    assert decode_address(raw) == "云南省泸西县"


def test_field_too_long_for_the_chip_is_refused() -> None:
    """Encoding a name longer than its 30-byte field fails instead of truncating silently."""
    card = decode_text_block(bytes.fromhex(VECTORS["cards"][0]["block"]))
    from dataclasses import replace

    with pytest.raises(ValueError, match="name"):
        encode_text_block(replace(card, name="很" * 16))
