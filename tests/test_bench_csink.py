"""The generator's C receive path (``comparison/bench/csink.c``) over real TCP sockets.

Each test drives the loop one turn at a time (``CSink.poll``) from the test's thread, so
every piece written is read by its own ``recvmsg``: a split of the stream is a split of
the reads the parser sees.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from comparison.bench.csink import CSink, KernelSink, KernelTrack, Kind
from comparison.bench.sink import Track
from comparison.bench.wire import payload, ws_frame

from .test_bench_wire import server_frame

END_EOF, END_WS_CLOSE, END_PROTOCOL = 1, 2, 4


SO_TIMESTAMPNS = 35  # Linux; Python's socket module lacks the constant


@pytest.fixture(scope="module", autouse=True)
def kernel_stamps_on() -> Iterator[None]:
    """Linux turns receive stamping on for the whole stack when a first socket asks for it, but
    asynchronously (a deferred static key): segments that arrive just after are not stamped.
    A socket kept asking for the module's length, read until a stamped segment comes, means
    every test finds stamping on already."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        receiver = socket.create_connection(listener.getsockname())
        sender, _ = listener.accept()
    receiver.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    receiver.settimeout(5)
    try:
        for _ in range(500):  # bounded: it comes within milliseconds
            sender.sendall(b"x")
            _, ancillary, _, _ = receiver.recvmsg(16, socket.CMSG_SPACE(16))
            if ancillary:
                break
        else:
            pytest.fail("the kernel never stamped a received segment")
        yield
    finally:
        sender.close()
        receiver.close()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair: (the server's end, the subscriber's end)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.setblocking(False)
    yield server, client
    server.close()
    client.close()


def watch(client: socket.socket, kind: Kind, last_seq: int = 0) -> tuple[CSink, int]:
    sink = CSink(max_conns=4, ring=4096)
    return sink, sink.add(client.detach(), kind, last_seq)


def send_in_pieces(server: socket.socket, sink: CSink, wire: bytes, cuts: list[int]) -> None:
    """Write ``wire`` cut at ``cuts``; the loop reads each piece before the next is written."""
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        if start == end:
            continue
        before = sink.totals().bytes
        server.sendall(wire[start:end])
        for _ in range(100):  # bounded: loopback has the bytes there at once
            sink.poll(10)
            if sink.totals().bytes - before == end - start:
                break
        assert sink.totals().bytes - before == end - start


def sse_event(seq: int) -> bytes:
    return b'event: message\ndata: {"event":"message","data":' + payload(1_000 + seq, seq) + b"}\n\n"


def chunk(data: bytes, ext: bytes = b"") -> bytes:
    return b"%x%s\r\n%s\r\n" % (len(data), ext, data)


def test_sse_chunked_body_cut_anywhere(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    sink, index = watch(client, Kind.SSE_CHUNKED)
    one, two, three = sse_event(1), sse_event(2), sse_event(3)
    # A ping comment, an event per chunk, an event split over two chunks right inside its
    # "seq", a chunk extension, two events in one chunk: read a byte at a time.
    cut = two.index(b'"seq":') + 3
    body = (chunk(b": ping\n\n") + chunk(one) + chunk(two[:cut]) + chunk(two[cut:], b";x=1")
            + chunk(three + sse_event(4)))
    send_in_pieces(server, sink, body, list(range(1, len(body))))
    seq = 4
    for at in range(1, 200):  # then more of the same, cut in two at each of their first 200 bytes
        events = chunk(sse_event(seq + 1)) + chunk(sse_event(seq + 2) + sse_event(seq + 3))
        send_in_pieces(server, sink, events, [at])
        seq += 3
    totals = sink.totals()
    assert totals.unstamped == 0 and totals.duplicates == 0
    st = sink.conn(index)
    assert st.ended == 0 and st.gaps == 0
    assert st.deliveries == seq and st.last_seq == seq
    latencies, lags = sink.take()
    assert len(latencies) == len(lags) == seq
    assert min(lags) >= 0
    sink.close()


def test_sse_ping_pairs_and_last_chunk(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    sink, index = watch(client, Kind.SSE_CHUNKED)
    body = chunk(b": ping\n\n") + chunk(sse_event(1)) + chunk(sse_event(2)) + b"0\r\n\r\n"
    send_in_pieces(server, sink, body, list(range(1, len(body))))
    st = sink.conn(index)
    assert (st.deliveries, st.last_seq, st.ended) == (2, 2, 5)
    assert sink.totals().ended == 1
    sink.close()


def ws_delivery(seq: int, pad: int = 0) -> bytes:
    return server_frame(b'42/chat,["message",' + payload(1_000 + seq, seq) + b"]" + b" " * pad)


def test_ws_frames_cut_at_every_byte(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    sink, index = watch(client, Kind.WS)
    seq, pings = 0, 0
    # A delivery, an Engine.IO ping, a delivery with a 16-bit length, a WebSocket ping, one with
    # a 64-bit length, a pong: the same frames again and again, cut once at every byte up to the
    # 64 KiB one's payload.
    before_big = ws_delivery(1) + server_frame(b"2") + ws_delivery(2, pad=200) + server_frame(b"hi", 0x89)
    for at in range(1, len(before_big) + 11):
        wire = (ws_delivery(seq + 1) + server_frame(b"2") + ws_delivery(seq + 2, pad=200)
                + server_frame(b"hi", 0x89) + ws_delivery(seq + 3, pad=70_000) + server_frame(b"", 0x8A))
        send_in_pieces(server, sink, wire, [at])
        seq += 3
        pings += 1
    st = sink.conn(index)
    assert (st.deliveries, st.last_seq, st.duplicates, st.ended) == (seq, seq, 0, 0)
    # Every Engine.IO ping got a masked "3", every WebSocket ping a masked pong with its payload.
    expected = (ws_frame(b"3") + ws_frame(b"hi", 0xA)) * pings
    got = b""
    server.settimeout(5)
    while len(got) < len(expected):
        got += server.recv(65536)
    assert got == expected
    assert sink.totals().pongs == 2 * pings
    sink.close()


def test_ws_close_frame_and_eof_end_connections() -> None:
    sink = CSink(max_conns=4, ring=64)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ends = []
        for _ in range(3):
            client = socket.create_connection(listener.getsockname())
            server, _ = listener.accept()
            ends.append((server, sink.add(client.detach(), Kind.WS)))
    (closing, a), (leaving, b), (masking, c) = ends
    closing.sendall(ws_delivery(1) + server_frame(b"\x03\xe8", 0x88) + ws_delivery(2))
    leaving.sendall(ws_delivery(1))
    leaving.close()
    masking.sendall(ws_frame(b"masked"))
    for _ in range(100):
        sink.poll(10)
        if sink.totals().ended == 3:
            break
    assert [sink.conn(i).ended for i in (a, b, c)] == [END_WS_CLOSE, END_EOF, END_PROTOCOL]
    assert sink.conn(a).deliveries == 1 and sink.conn(b).deliveries == 1  # nothing read after the close
    closing.close()
    masking.close()
    sink.close()


def test_duplicates_late_arrivals_gaps_and_losses(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    kernel = KernelSink(max_conns=4, ring=64)
    index = kernel.csink.add(client.detach(), Kind.RAW, last_seq=1)  # seq 1 came before the handover
    # 2 twice; 4 late (fills its hole); 1 from before the handover; jumps past the window (1,024
    # seqs): 2,000 arrives late but in time, then again after it left the window.
    seqs = (2, 2, 5, 4, 9, 1, 2_050, 2_000, 3_100, 2_000)
    send_in_pieces(server, kernel.csink, b"".join(payload(7, s) for s in seqs), [])
    st = kernel.csink.conn(index)
    assert (st.deliveries, st.duplicates, st.last_seq) == (7, 3, 3_100)
    # Missing seqs are kept as ranges once they leave the window: 4 of them, then only counted.
    assert [(st.gap_first[k], st.gap_last[k]) for k in range(st.gaps)] == [(3, 3), (6, 8), (10, 1_999), (2_001, 2_049)]
    assert st.gap_more == len(range(2_051, 3_100 - 1_024 + 1))
    track = KernelTrack(kernel, index, Track(kernel))
    # Lost: 3, 6, 8, 10, all of the uncounted range (conservatively) and 3,101; 7 was refused.
    assert track.lost([1, 2, 3, 4, 5, 6, 8, 9, 10, 2_000, 2_050, 3_100, 3_101]) == 4 + st.gap_more + 1
    assert track.lost([*range(1, 3_101)]) == 3_100 - 8  # every seq but 1, 2, 4, 5, 9, 2,000, 2,050, 3,100
    kernel.sync()
    assert (kernel.delivered, kernel.duplicates, kernel.phase.deliveries) == (7, 3, 7)
    kernel.close()


def test_a_lazy_connection_counts_its_deliveries_without_latency_samples() -> None:
    # lazy_ms=0: the lazy set is read at every poll, so the test does not wait on its period;
    # everything is written before the poll, so each connection's bytes take one read.
    sink = CSink(max_conns=4, ring=64, lazy_ms=0)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ends = []
        for eager in (True, False):
            client = socket.create_connection(listener.getsockname())
            server, _ = listener.accept()
            ends.append((server, sink.add(client.detach(), Kind.WS, eager=eager)))
    (eager_end, e), (lazy_end, lazy) = ends
    eager_end.sendall(ws_delivery(1))
    lazy_end.sendall(ws_delivery(1) + server_frame(b"2") + ws_delivery(2) + ws_delivery(2) + ws_delivery(4))
    for _ in range(100):  # bounded: loopback has the bytes there at once
        sink.poll(10)
        if sink.totals().bytes == len(ws_delivery(1)) * 5 + len(server_frame(b"2")):
            break
    st = sink.conn(lazy)
    assert (st.deliveries, st.duplicates, st.last_seq, st.gaps) == (3, 1, 4, 0)
    totals = sink.totals()
    assert (totals.deliveries, totals.duplicates, totals.lazy_reads, totals.pongs) == (4, 1, 1, 1)
    latencies, lags = sink.take()
    assert len(latencies) == len(lags) == 1 == sink.conn(e).deliveries  # the eager one's only
    assert totals.lazy_max_bytes == len(ws_delivery(1)) * 4 + len(server_frame(b"2"))
    lazy_end.settimeout(5)
    assert lazy_end.recv(64) == ws_frame(b"3")  # its Engine.IO ping was answered
    eager_end.close()
    lazy_end.close()
    sink.close()
