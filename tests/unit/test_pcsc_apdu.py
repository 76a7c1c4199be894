"""APDU building and parsing for the social security card and EMV bank cards, sans-I/O: the
virtual card's interpreter answers the commands directly, with no reader in between."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.drivers.pcsc import apdu
from edge.drivers.pcsc.driver import _diff
from edge.drivers.pcsc.events import (
    CardInserted,
    CardRemoved,
    ReaderAttached,
    ReaderDetached,
)
from edge.simulators.vcard import CardOS


def test_select_social_security_matches_the_document() -> None:
    """SELECT by the AID sx1.sh.社会保障 is the document's 20 bytes, built from the GBK name."""
    document = bytes.fromhex("00 A4 04 00 0F 73 78 31 2E 73 68 2E C9 E7 BB E1 B1 A3 D5 CF")
    assert document == apdu.SELECT_SSC
    assert apdu.select_by_name(apdu.SSC_AID) == document


def test_command_encodings() -> None:
    """READ RECORD puts the SFI in P2's top five bits; GPO wraps PDOL data in tag 83."""
    assert apdu.read_record(8, 6) == bytes.fromhex("00B2083400")
    assert apdu.read_record(1, 1) == bytes.fromhex("00B2010C00")
    assert apdu.get_processing_options(b"") == bytes.fromhex("80A8000002830000")
    assert apdu.select_by_name(apdu.PPSE, le=True) == bytes.fromhex(
        "00A404000E325041592E5359532E444446303100"
    )
    with pytest.raises(ValueError):
        apdu.read_record(0, 1)


def test_tlv_nested_multibyte_tags_and_long_lengths() -> None:
    """Constructed objects parse into children; two-byte tags and 81/82 lengths are read."""
    long_value = b"x" * 300
    data = apdu.encode_tlv(
        0x70, apdu.encode_tlv(0x5F20, b"WANG/XIUYING") + apdu.encode_tlv(0x9F61, b"1" * 130)
    ) + apdu.encode_tlv(0xDF01, long_value)
    tlvs = apdu.parse_tlv(data)
    assert [t.tag for t in tlvs] == [0x70, 0xDF01]
    assert tlvs[0].constructed and not tlvs[1].constructed
    holder = apdu.find_tag(tlvs, 0x9F61)
    assert holder is not None and holder.value == b"1" * 130
    assert tlvs[1].value == long_value


@pytest.mark.parametrize(
    "data",
    [b"\x5a", b"\x5a\x05\x01", b"\x9f", b"\x5a\x84\x00\x00\x00\x01\x00", b"\x5a\x82\x01"],
)
def test_malformed_tlv_is_a_tlv_error(data: bytes) -> None:
    """Truncated tags, lengths and values raise TlvError."""
    with pytest.raises(apdu.TlvError):
        apdu.parse_tlv(data)


@given(st.binary(max_size=300))
def test_tlv_parser_only_raises_tlv_errors(data: bytes) -> None:
    """Any bytes parse or raise TlvError; nothing else escapes."""
    with contextlib.suppress(apdu.TlvError):
        apdu.parse_tlv(data)


def test_expiry_with_non_decimal_nibbles_is_unknown() -> None:
    """An expiry whose BCD holds A-F nibbles reads as unknown rather than failing the card."""
    record = apdu.encode_tlv(0x5A, b"\x62\x17") + apdu.encode_tlv(0x5F24, b"\x31\x9a\x01")
    assert apdu.decode_bank_card(b"", [record]).expiry is None


@given(st.binary(max_size=120))
def test_emv_parsers_only_raise_apdu_errors(data: bytes) -> None:
    """The PPSE, GPO, AFL and record decoders raise ApduError subclasses for any input."""
    for parse in (apdu.parse_ppse, apdu.parse_gpo, apdu.parse_afl, apdu.pdol_data):
        with contextlib.suppress(apdu.ApduError):
            parse(data)
    with contextlib.suppress(apdu.ApduError):
        apdu.decode_bank_card(b"", [data])


def _exchange(card: CardOS, command: bytes) -> bytes:
    return apdu.expect_ok(card.respond(command), command.hex())


def test_social_security_card_read_sans_io() -> None:
    """SELECT then every EF05/EF06 record, decoded: the holder's number, name, sex, ethnicity,
    birth date and the card's number and dates."""
    card = CardOS()
    _exchange(card, apdu.SELECT_SSC)
    values = {
        record: apdu.parse_ssc_record(record, _exchange(card, command))
        for record, command in apdu.ssc_read_commands()
    }
    ssc = apdu.decode_ssc(values)
    assert ssc.social_security_number == "11010519491231002X"
    assert (ssc.name, ssc.sex, ssc.ethnicity) == ("王秀英", "2", "01")
    assert ssc.birth_date == dt.date(1949, 12, 31)
    assert (ssc.card_number, ssc.version) == ("A12345678", "3.00")
    assert (ssc.issue_date, ssc.expiry_date) == (dt.date(2021, 7, 1), dt.date(2031, 7, 1))


def test_records_need_a_selected_application() -> None:
    """Reading a record before SELECT is refused with 6985, which expect_ok raises."""
    card = CardOS()
    with pytest.raises(apdu.StatusWordError) as caught:
        _exchange(card, apdu.read_record(8, 6))
    assert caught.value.sw == 0x6985


def test_bank_card_read_sans_io() -> None:
    """PPSE -> AID -> GPO with the PDOL filled -> records over the AFL gives PAN, holder name,
    expiry (last day of the month) and the holder's ID number."""
    card = CardOS()
    [aid] = apdu.parse_ppse(_exchange(card, apdu.select_by_name(apdu.PPSE, le=True)))
    fci = _exchange(card, apdu.select_by_name(aid, le=True))
    pdol = apdu.pdol_data(fci)
    assert len(pdol) == 4 + 6 + 2 and pdol[-2:] == b"\x01\x56"  # TTQ, amount, CNY
    afl = apdu.parse_gpo(_exchange(card, apdu.get_processing_options(pdol)))
    assert apdu.parse_afl(afl) == [(1, 1), (2, 1)]
    records = [_exchange(card, apdu.read_record(r, sfi)) for sfi, r in apdu.parse_afl(afl)]
    bank = apdu.decode_bank_card(aid, records)
    assert bank.pan == "6217000010001234567"
    assert apdu.masked_pan(bank.pan) == "621700*********4567"
    assert bank.holder_name == "WANG/XIUYING"
    assert bank.expiry == dt.date(2031, 7, 31)
    assert bank.holder_id_number == "11010519491231002X"


def test_ppse_orders_by_priority_and_gpo_format_1() -> None:
    """Applications come out by priority indicator; a format-1 GPO yields the AFL after the AIP."""

    def entry(aid: bytes, prio: int) -> bytes:
        return apdu.encode_tlv(
            0x61, apdu.encode_tlv(0x4F, aid) + apdu.encode_tlv(0x87, bytes((prio,)))
        )

    fci = apdu.encode_tlv(
        0x6F,
        apdu.encode_tlv(
            0xA5, apdu.encode_tlv(0xBF0C, entry(b"\xa0\x02", 2) + entry(b"\xa0\x01", 1))
        ),
    )
    assert apdu.parse_ppse(fci) == [b"\xa0\x01", b"\xa0\x02"]
    assert apdu.parse_gpo(apdu.encode_tlv(0x80, b"\x7c\x00" + b"\x08\x01\x02\x00")) == (
        b"\x08\x01\x02\x00"
    )
    assert apdu.parse_afl(b"\x08\x01\x02\x00") == [(1, 1), (1, 2)]


def test_pan_falls_back_to_track_2() -> None:
    """A card without tag 5A still yields its PAN from the track 2 equivalent data."""
    record = apdu.encode_tlv(0x70, apdu.encode_tlv(0x57, bytes.fromhex("6217000010001234567D3107")))
    assert apdu.decode_bank_card(b"", [record]).pan == "6217000010001234567"


def test_watch_diff_reports_readers_and_cards() -> None:
    """Between two snapshots: readers attached and detached, cards inserted and removed, and
    only newly inserted cards are read."""
    atr = b"\x3b\x80\x80\x01\x01"
    before = {"A": None, "B": atr}
    after = {"A": atr, "C": None}
    events, to_read = _diff(before, after)
    assert events == [
        CardRemoved("B"),
        ReaderDetached("B"),
        ReaderAttached("C"),
        CardInserted("A", atr),
    ]
    assert to_read == ["A"]
    assert _diff(after, after) == ([], [])
