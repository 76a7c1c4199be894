"""The SAM frame codec against the byte-exact vectors of tests/vectors/sam/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge.drivers.sam import errors
from edge.drivers.sam.protocol import (
    PREAMBLE,
    CardBlocks,
    Command,
    CommandDecoder,
    Reply,
    ReplyDecoder,
    SamId,
    Status,
    build_read_data,
    encode_command,
    encode_reply,
    encode_set_baud,
    parse_find,
    parse_new_address,
    parse_read,
    parse_sam_id,
    parse_select,
    raise_for_status,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "sam"
COMMANDS: dict[str, Any] = json.loads((VECTORS / "commands.json").read_text(encoding="utf-8"))
REPLIES: dict[str, Any] = json.loads((VECTORS / "replies.json").read_text(encoding="utf-8"))


def _hex(text: str) -> bytes:
    return bytes.fromhex(text)


def _decode_all(chunks: list[bytes]) -> list[Reply]:
    decoder = ReplyDecoder()
    out: list[Reply] = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (reply := decoder.next_reply()) is not None:
            out.append(reply)
    return out


def _read_reply() -> tuple[bytes, CardBlocks]:
    text = bytes(range(256))
    photo = bytes((i * 7) & 0xFF for i in range(1024))
    blocks = CardBlocks(text, photo)
    return encode_reply(Status.SUCCESS, build_read_data(blocks)), blocks


@pytest.mark.parametrize("vector", COMMANDS["commands"], ids=lambda v: v["name"])
def test_command_frames_match_the_document(vector: dict[str, Any]) -> None:
    """Every command of the protocol document encodes to its frame byte for byte."""
    assert encode_command(Command[vector["command"]]) == _hex(vector["frame"])


@pytest.mark.parametrize("vector", COMMANDS["set_baud"], ids=lambda v: v["name"])
def test_set_baud_frames(vector: dict[str, Any]) -> None:
    """The set-baud frame carries PARA and the rate code n with LEN 00 04 and the XOR CHK."""
    assert encode_set_baud(vector["baud"], vector["para"]) == _hex(vector["frame"])


def test_set_baud_refuses_a_rate_the_sam_lacks() -> None:
    """A rate outside the five the SAM supports is refused before anything is sent."""
    with pytest.raises(ValueError, match="4800"):
        encode_set_baud(4800, 0)


@pytest.mark.parametrize("vector", REPLIES["replies"], ids=lambda v: v["name"])
def test_reply_vectors_decode(vector: dict[str, Any]) -> None:
    """The document's typical replies decode to their status and data, and re-encode exactly."""
    frame = _hex(vector["frame"])
    [reply] = _decode_all([frame])
    assert (reply.sw1, reply.sw2, reply.sw3) == (0, 0, vector["sw3"])
    assert reply.data == _hex(vector["data"])
    assert encode_reply(reply.sw3, reply.data) == frame
    if "sam_id" in vector:
        assert str(parse_sam_id(reply)) == vector["sam_id"]


@pytest.mark.parametrize("vector", REPLIES["statuses"], ids=lambda v: v["status"])
def test_every_status_maps_to_a_result_or_its_error(vector: dict[str, Any]) -> None:
    """Each SW3 code of the document is a named Status; failures raise their own error type
    carrying the code, successes are accepted."""
    [reply] = _decode_all([_hex(vector["frame"])])
    status = Status[vector["status"]]
    assert reply.status is status
    assert status.description  # every status has operator text
    if vector["error"] is None:
        assert raise_for_status(reply, status) is status
    else:
        error_type = getattr(errors, vector["error"])
        with pytest.raises(error_type) as caught:
            raise_for_status(reply, Status.SUCCESS)
        assert caught.value.sw3 == vector["sw3"]
        assert isinstance(caught.value, errors.StatusError)


def test_find_reports_presence_and_absence() -> None:
    """Find says True on 0x9F, False on 0x80, and raises on anything else."""
    assert parse_find(Reply(0, 0, 0x9F, b"\0" * 4)) is True
    assert parse_find(Reply(0, 0, 0x80, b"")) is False
    with pytest.raises(errors.SamFaultError):
        parse_find(Reply(0, 0, 0x60, b""))


def test_unknown_status_code_is_a_fault_not_a_crash() -> None:
    """A status byte the document does not name raises SamFaultError naming the byte."""
    reply = Reply(0, 0, 0x55, b"")
    assert reply.status is None
    with pytest.raises(errors.SamFaultError, match="0x55"):
        raise_for_status(reply, Status.SUCCESS)


def test_read_reply_layout_is_the_documents() -> None:
    """A text + photo reply is 1295 bytes with LEN 05 08, text at offset 14, photo at 270."""
    frame, blocks = _read_reply()
    assert len(frame) == 1295
    assert frame[5:7] == b"\x05\x08"
    assert frame[10:14] == b"\x01\x00\x04\x00"
    assert frame[14:270] == blocks.text
    assert frame[270:1294] == blocks.photo
    [reply] = _decode_all([frame])
    assert parse_read(reply) == blocks


@pytest.mark.parametrize(("size", "total"), [(1024, 2321), (512, 1809), (0, 1297)])
def test_fingerprint_read_sizes(size: int, total: int) -> None:
    """The fingerprint read is 2321, 1809 or 1297 bytes for a 1024, 512 or empty block."""
    blocks = CardBlocks(b"t" * 256, b"p" * 1024, b"f" * size)
    frame = encode_reply(Status.SUCCESS, build_read_data(blocks))
    assert len(frame) == total
    [reply] = _decode_all([frame])
    assert parse_read(reply, with_fingerprint=True) == blocks


def test_read_reply_with_lengths_that_disagree_is_a_length_error() -> None:
    """Declared block lengths that do not add up to the data raise LengthError."""
    data = b"\x01\x00\x04\x00" + b"x" * 1000
    with pytest.raises(errors.LengthError):
        parse_read(Reply(0, 0, 0x90, data))
    with pytest.raises(errors.LengthError):
        parse_read(Reply(0, 0, 0x90, b"\x00"))
    with pytest.raises(errors.LengthError):
        parse_select(Reply(0, 0, 0x90, b"\x01\x02"))
    with pytest.raises(errors.LengthError):
        parse_sam_id(Reply(0, 0, 0x90, b"\x01" * 15))


def test_new_address_absent_is_empty() -> None:
    """A card without an appended address answers 0x91, which reads as no address."""
    assert parse_new_address(Reply(0, 0, 0x91, b"")) == b""


def test_read_reply_split_at_every_byte_boundary() -> None:
    """A 1295-byte reply cut in two at any position decodes to the same reply."""
    frame, blocks = _read_reply()
    for cut in range(1, len(frame)):
        [reply] = _decode_all([frame[:cut], frame[cut:]])
        assert reply.data[4:260] == blocks.text


def test_short_replies_split_at_every_boundary_into_three() -> None:
    """Every short vector reply cut into three pieces at every pair of positions decodes."""
    for vector in REPLIES["replies"]:
        frame = _hex(vector["frame"])
        for a in range(len(frame) + 1):
            for b in range(a, len(frame) + 1):
                [reply] = _decode_all([frame[:a], frame[a:b], frame[b:]])
                assert reply.sw3 == vector["sw3"]


def test_one_byte_at_a_time_and_many_frames_at_once() -> None:
    """Frames fed byte by byte, or several in one chunk, come out whole and in order."""
    frames = [_hex(v["frame"]) for v in REPLIES["replies"]]
    stream = b"".join(frames)
    one_by_one = _decode_all([bytes((b,)) for b in stream])
    all_at_once = _decode_all([stream])
    assert [r.sw3 for r in one_by_one] == [v["sw3"] for v in REPLIES["replies"]]
    assert one_by_one == all_at_once


def test_garbage_before_the_preamble_is_skipped_and_counted() -> None:
    """Noise before a frame, including bytes that start like a preamble, is dropped."""
    frame = _hex("AA AA AA 96 69 00 04 00 00 80 84")
    noise = b"\x00\xff\xaa\xaa\x96\xaa\xaa\xaa\xaa"
    decoder = ReplyDecoder()
    decoder.feed(noise + frame)
    reply = decoder.next_reply()
    assert reply is not None and reply.sw3 == 0x80
    assert decoder.discarded == len(noise)


def test_bad_checksum_raises_then_the_next_frame_decodes() -> None:
    """A frame with a wrong CHK raises ChecksumError; a good frame after it is still found."""
    bad = _hex("AA AA AA 96 69 00 04 00 00 80 85")
    good = _hex("AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97")
    decoder = ReplyDecoder()
    decoder.feed(bad + good)
    with pytest.raises(errors.ChecksumError):
        decoder.next_reply()
    reply = decoder.next_reply()
    assert reply is not None and reply.status is Status.CARD_FOUND


@pytest.mark.parametrize("length", [b"\x00\x00", b"\x00\x03", b"\xff\xff", b"\x09\x0b"])
def test_impossible_len_is_a_length_error(length: bytes) -> None:
    """LEN below SW+CHK or above the longest frame the protocol defines raises LengthError."""
    decoder = ReplyDecoder()
    decoder.feed(PREAMBLE + length + b"\x00" * 8)
    with pytest.raises(errors.LengthError):
        decoder.next_reply()


def test_truncated_reply_waits_for_more_and_says_how_much() -> None:
    """Half a frame yields nothing and bytes_needed names exactly the missing count."""
    frame, _ = _read_reply()
    decoder = ReplyDecoder()
    decoder.feed(frame[:600])
    assert decoder.next_reply() is None
    assert decoder.bytes_needed() == len(frame) - 600


def test_command_decoder_reads_what_the_host_sends() -> None:
    """The simulator's side decodes every command frame back to its Command."""
    decoder = CommandDecoder()
    decoder.feed(b"".join(encode_command(c) for c in Command))
    seen = []
    while (frame := decoder.next_command()) is not None:
        seen.append(frame.command)
    assert seen == list(Command)


def test_sam_id_format() -> None:
    """The SAM id prints as %02d.%02d-%08u-%010u-%010u of its little-endian fields."""
    raw = (
        (5).to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + (20200101).to_bytes(4, "little")
        + (4294967295).to_bytes(4, "little")
        + (7).to_bytes(4, "little")
    )
    assert str(SamId(raw)) == "05.01-20200101-4294967295-0000000007"
