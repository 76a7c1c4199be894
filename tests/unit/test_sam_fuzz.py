"""Property tests: no input makes the SAM decoders raise anything but their own errors, or hang."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.drivers.sam.errors import CardDataError, FrameError, SamError
from edge.drivers.sam.protocol import (
    PREAMBLE,
    CommandDecoder,
    Reply,
    ReplyDecoder,
    encode_reply,
    parse_find,
    parse_read,
    parse_sam_id,
    parse_select,
)
from edge.drivers.sam.textblock import decode_text_block

# Bytes biased towards the ones that matter to framing, so the decoder meets near-frames often.
framing_bytes = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.just(PREAMBLE),
        st.sampled_from([b"\xaa", b"\x96\x69", b"\x00\x04", b"\x05\x08", b"\x09\x0a"]),
        st.builds(encode_reply, st.integers(0, 255), st.binary(max_size=30)),
    ),
    max_size=30,
)


def _drain(decoder: ReplyDecoder | CommandDecoder, budget: int) -> int:
    """Pull frames until the decoder wants more; return how many calls it took."""
    calls = 0
    while calls <= budget:
        calls += 1
        try:
            frame = (
                decoder.next_reply()
                if isinstance(decoder, ReplyDecoder)
                else decoder.next_command()
            )
        except FrameError:
            continue
        if frame is None:
            return calls
    raise AssertionError("decoder kept producing without being fed: it would hang")


@settings(max_examples=400)
@given(framing_bytes, st.integers(min_value=1, max_value=17))
def test_reply_decoder_only_raises_frame_errors_and_terminates(
    pieces: list[bytes], chunk: int
) -> None:
    """Any byte stream in any chunking yields replies or FrameErrors, and each call to the
    decoder either consumes input or asks for more, so a pump loop always ends."""
    stream = b"".join(pieces)
    decoder = ReplyDecoder()
    for i in range(0, len(stream), chunk):
        decoder.feed(stream[i : i + chunk])
        # Every call either returns None or consumes at least one byte.
        _drain(decoder, budget=len(stream) + 2)
        assert decoder.bytes_needed() >= 1


@given(framing_bytes)
def test_command_decoder_only_raises_frame_errors(pieces: list[bytes]) -> None:
    """The simulator's command decoder is as robust as the host's."""
    decoder = CommandDecoder()
    decoder.feed(b"".join(pieces))
    _drain(decoder, budget=sum(map(len, pieces)) + 2)


@given(st.binary(min_size=256, max_size=256))
def test_text_block_decoder_only_raises_card_data_errors(block: bytes) -> None:
    """Any 256 bytes decode to a card or raise CardDataError (or its subclass), nothing else."""
    with contextlib.suppress(CardDataError):
        decode_text_block(block)


@given(st.integers(0, 255), st.binary(max_size=2400))
def test_reply_parsers_only_raise_sam_errors(sw3: int, data: bytes) -> None:
    """The per-command reply parsers raise SamError subclasses for any status and data."""
    reply = Reply(0, 0, sw3, data)
    for parse in (parse_find, parse_select, parse_sam_id, parse_read):
        with contextlib.suppress(SamError):
            parse(reply)
    with contextlib.suppress(SamError):
        parse_read(reply, with_fingerprint=True)
