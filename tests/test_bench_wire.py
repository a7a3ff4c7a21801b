"""The benchmark generator's codecs and loss accounting, without sockets or an event loop."""

from __future__ import annotations

import pytest

from comparison.bench.sink import Sink, Track, percentiles
from comparison.bench.wire import (
    SAMPLE,
    ChunkedDecoder,
    ProtocolError,
    ResponseReader,
    WsReader,
    http_request,
    payload,
    post_template,
    post_with,
    session_key_header,
    sio_ack,
    ws_frame,
)


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def server_frame(body: bytes, b0: int = 0x81) -> bytes:
    n = len(body)
    if n < 126:
        return bytes((b0, n)) + body
    if n < 65536:
        return bytes((b0, 126)) + n.to_bytes(2, "big") + body
    return bytes((b0, 127)) + n.to_bytes(8, "big") + body


def test_sample_finds_every_payload_whatever_the_json_spacing() -> None:
    body = payload(123456789, 42)
    assert SAMPLE.findall(body) == [(b"123456789", b"42")]
    spaced = b'42/chat,["message", {"room": "bench", "data": {"t": 7, "seq": 8, "pad": "x"}}]'
    assert SAMPLE.findall(spaced) == [(b"7", b"8")]
    assert SAMPLE.findall(b'{"ts":1,"seq":2}') == []


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_chunked_decoder_any_split(size: int) -> None:
    stream = b"5\r\nhello\r\n1;ext=1\r\n \r\nb\r\nworld!!!!!!\r\n0\r\n\r\nNEXT"
    decoder = ChunkedDecoder()
    body = b"".join(decoder.feed(part) for part in split_every(stream, size))
    assert body == b"hello world!!!!!!"
    assert decoder.done


@pytest.mark.parametrize("size", [1, 5, 64, 4096])
def test_response_reader_keep_alive(size: int) -> None:
    wire = (
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnop\r\n0\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    reader = ResponseReader()
    got = [r for part in split_every(wire, size) for r in reader.feed(part)]
    assert [(r.status, r.body) for r in got] == [(200, b"ok"), (404, b"nop"), (200, b"")]


def test_post_template_builds_what_http_request_builds() -> None:
    headers = session_key_header("k" * 22)
    template = post_template("/sse/sessions/s/publish", "127.0.0.1:9", headers)
    body = payload(1, 2)
    assert post_with(template, body) == http_request("POST", "/sse/sessions/s/publish", "127.0.0.1:9", body, headers)
    assert b"\r\nX-Session-Key: " + b"k" * 22 + b"\r\n" in post_with(template, body)
    assert post_with(template, b"") == http_request("POST", "/sse/sessions/s/publish", "127.0.0.1:9", b"", headers)


def test_sse_stream_takes_the_sid_and_the_key_from_open() -> None:
    from comparison.bench.client_sse import SseStream

    stream = SseStream(None)
    stream.connection_made(_NullTransport())
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"  # no chunking: read to close
    stream.data_received(head + b'id: S:K;\nevent: open\ndata: {"sid":"S","key":"K","namespace":"/"}\n\n')
    assert (stream.sid, stream.key) == ("S", "K") and list(stream.inbox) == [("S", "K")]
    keyless = SseStream(None)
    keyless.connection_made(_NullTransport())
    keyless.data_received(head + b'event: open\ndata: {"sid":"S"}\n\n')
    assert keyless.ended is not None and "key" in keyless.ended and keyless.sid is None


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def abort(self) -> None:
        pass


def test_response_reader_refuses_unframed_bodies() -> None:
    with pytest.raises(ProtocolError):
        ResponseReader().feed(b"HTTP/1.1 200 OK\r\n\r\nbody")


@pytest.mark.parametrize("size", [1, 3, 100, 100_000])
def test_ws_reader_splits_frames_and_keeps_deliveries_out_of_the_way(size: int) -> None:
    deliveries = [b'42/chat,["message",' + payload(i, i) + b"]" for i in range(1, 4)]
    big = b'42/chat,["message",' + payload(9, 9) + b"]" + b" " * 70_000
    wire = (server_frame(deliveries[0]) + server_frame(b"2") + server_frame(deliveries[1])
            + server_frame(b"\x03\xe8", 0x88) + server_frame(deliveries[2]) + server_frame(big))
    reader = WsReader(short=1)
    found, small = [], []
    for part in split_every(wire, size):
        buf, end, frames = reader.feed(part)
        found += SAMPLE.findall(buf, 0, end)
        small += frames
    assert [int(s) for _, s in found] == [1, 2, 3, 9]
    assert small == [(1, b"2"), (8, b"\x03\xe8")]


def test_ws_reader_reassembles_fragments_and_refuses_masked_frames() -> None:
    reader = WsReader()
    _, _, frames = reader.feed(server_frame(b"43/chat,", 0x01) + server_frame(b"1[{}]", 0x80))
    assert frames == [(1, b"43/chat,1[{}]")]
    with pytest.raises(ProtocolError):
        WsReader().feed(ws_frame(b"masked"))


def test_client_frames_use_a_zero_mask() -> None:
    assert ws_frame(b"3") == b"\x81\x81\x00\x00\x00\x003"
    assert ws_frame(b"x" * 200)[:4] == b"\x81\xfe\x00\xc8"


def test_sio_ack() -> None:
    assert sio_ack(b'43/chat,12[{"ok":true}]', "/chat") == (12, b'[{"ok":true}]')
    assert sio_ack(b'42/chat,["message",{}]', "/chat") is None


def test_track_counts_losses_duplicates_and_late_arrivals() -> None:
    sink = Sink()
    sink.begin("one", 1)
    track = Track(sink)
    now = 10_000

    def got(*seqs: int) -> None:
        track.add([(b"100", str(s).encode()) for s in seqs], now)

    got(1, 2, 4, 4, 3, 7)  # 3 late, 4 twice, 5 and 6 missing
    assert track.duplicates == 1 and track.missing == {5, 6}
    acked = [1, 2, 3, 4, 5, 7, 8]  # 6 was refused by the server; 8 never came
    assert track.lost(acked) == 2  # 5 and 8
    assert sink.delivered == 5 and sink.duplicates == 1
    assert min(sink.phase.latencies) == now - 100


def test_samples_are_filed_by_the_phase_of_their_seq() -> None:
    sink = Sink()
    first = sink.begin("first", 1)
    track = Track(sink)
    track.add([(b"0", b"1")], 5)
    second = sink.begin("second", 2)
    track.add([(b"0", b"3"), (b"0", b"2")], 5)
    assert first.deliveries == 1 and second.deliveries == 2


def test_percentiles_nearest_rank() -> None:
    from array import array

    p = percentiles(array("q", [i * 1_000_000 for i in range(1, 101)]))
    assert (p["p50"], p["p99"], p["min"], p["max"]) == (50.0, 99.0, 1.0, 100.0)
