"""rtclient's reconnect state machine, without an event loop, a server or a socket."""

from __future__ import annotations

import random

import pytest

from gateway.wire.errors import (
    BadLastEventId,
    BrokerUnavailable,
    ForbiddenRoom,
    OffsetFromFuture,
    RateLimited,
    SessionExpired,
    UnknownSession,
)
from rtclient.protocol import (
    UNUSABLE_RESUMES,
    Backoff,
    ClientState,
    Closing,
    ConnectionLost,
    Gap,
    SessionEnded,
    UnusableStream,
)
from rtclient.reconnect import (
    AwaitReconnect,
    Deliver,
    GiveUp,
    OpenSession,
    Reconnector,
    Rejoin,
    RetryAfter,
    Sleep,
    Stop,
)

OPEN = {"sid": "S1", "key": "K1", "namespace": "/", "pingInterval": 1000, "pingTimeout": 500,
        "maxPayload": 10, "rooms": []}


def machine(*rooms: str, sid: str = "S1") -> Reconnector:
    """A client connected as ``sid`` whose application joined ``rooms`` (and the gateway confirmed)."""
    state = ClientState()
    state.handle("open", {**OPEN, "sid": sid})
    m = Reconnector(state, Backoff(base=0.2, cap=10.0, rng=random.Random(7)))
    m.opened()
    for i, room in enumerate(rooms):
        m.join(room)
        state.handle("joined", {"room": room, "offset": f"{i + 1}-0"})
    return m


def new_session(m: Reconnector, sid: str) -> None:
    """What the driver does for ``OpenSession(resume=False)`` that works: the gateway's open."""
    m.state.handle("open", {**OPEN, "sid": sid})


def test_backoff_grows_from_one_loss_and_resets_on_the_next():
    m = machine("lobby")
    first = m.lost()
    assert len(first) == 1 and isinstance(first[0], Sleep) and 0.1 <= first[0].seconds <= 0.2
    assert m.timer_fired() == [OpenSession(resume=True)]
    caps = []
    for _ in range(8):
        (sleep,) = m.failed(ConnectionLost("refused"))
        assert isinstance(sleep, Sleep)
        caps.append(sleep.seconds)
        assert m.timer_fired() == [OpenSession(resume=True)]
    assert max(caps) > 2.0 and all(0.1 <= c <= 10.0 for c in caps)  # 0.2 * 2**n, jittered, capped
    assert m.opened() == [] and m.state.stats.reconnects == 1
    (again,) = m.lost()
    assert isinstance(again, Sleep) and again.seconds <= 0.2  # reset: a new loss starts small


def test_a_resume_that_works_rejoins_nothing():
    m = machine("lobby", "news")
    m.lost()
    assert m.timer_fired() == [OpenSession(resume=True)]
    m.state.handle("open", {**OPEN, "rooms": ["lobby", "news"]})  # resumed: same sid
    assert m.opened() == [] and m.state.rooms == {"lobby", "news"}


@pytest.mark.parametrize("refusal", [UnknownSession(), SessionExpired(), BadLastEventId(), OffsetFromFuture()])
def test_session_gone_or_resume_refused_starts_over_and_rejoins(refusal):
    m = machine("lobby", "news")
    m.lost()
    m.timer_fired()
    deliver, reopen = m.failed(refusal)
    assert isinstance(deliver, Deliver) and reopen == OpenSession(resume=False)
    assert [(g.room, g.reason) for g in deliver.events if isinstance(g, Gap)] == [
        ("lobby", "session_lost"), ("news", "session_lost")]
    assert m.state.sid is None and m.state.rooms == set()  # the gateway holds nothing for us now
    new_session(m, "S2")
    assert m.opened() == [Rejoin(("lobby", "news"))]
    assert m.rejoined() == []
    m.lost()
    m.timer_fired()
    assert m.opened() == []  # rejoined once: a later resume does not join again


def test_a_failed_start_over_then_a_success_rejoins_the_applications_rooms():
    """The bug of issue 15: the first start over fails, the next one must still rejoin."""
    m = machine("lobby")
    m.lost()
    m.timer_fired()
    m.failed(UnknownSession())  # -> Deliver(gaps), OpenSession(resume=False)
    (sleep,) = m.failed(RateLimited(retryAfter=2))  # the start over refused once
    assert isinstance(sleep, Sleep) and sleep.seconds >= 2
    assert m.timer_fired() == [OpenSession(resume=False)]  # still no session: start over again
    new_session(m, "S2")
    assert m.opened() == [Rejoin(("lobby",))]


def test_a_start_over_that_opened_then_broke_rejoins_after_resuming_the_new_session():
    m = machine("lobby")
    m.lost()
    m.timer_fired()
    m.failed(UnknownSession())
    new_session(m, "S2")  # the open frame came...
    (sleep,) = m.failed(ConnectionLost("...then the connection broke"))
    assert isinstance(sleep, Sleep)
    assert m.timer_fired() == [OpenSession(resume=True)]  # resume S2, which is in nothing
    m.state.handle("open", {**OPEN, "sid": "S2", "rooms": []})
    assert m.state.rooms == set()
    assert m.opened() == [Rejoin(("lobby",))]


def test_a_rejoin_cut_short_is_done_again_on_the_next_open():
    m = machine("lobby")
    m.lost()
    m.timer_fired()
    m.failed(SessionExpired())
    new_session(m, "S2")
    assert m.opened() == [Rejoin(("lobby",))]
    assert isinstance(m.lost()[0], Sleep)  # the connection broke during the rejoin
    assert m.timer_fired() == [OpenSession(resume=True)]
    assert m.opened() == [Rejoin(("lobby",))]


def test_leave_removes_from_wanted_and_a_refused_join_is_not_asked_again():
    m = machine("lobby", "news", "old")
    m.leave("old")
    m.join("vip")
    m.join_refused("vip")  # forbidden_room, say
    assert m.wanted == {"lobby", "news"}
    m.lost()
    m.timer_fired()
    m.failed(UnknownSession())
    new_session(m, "S2")
    assert m.opened() == [Rejoin(("lobby", "news"))]


def test_a_start_over_with_no_rooms_wanted_rejoins_nothing():
    m = machine()
    m.lost()
    m.timer_fired()
    m.failed(UnknownSession())
    new_session(m, "S2")
    assert m.opened() == []


def test_unusable_resumes_are_counted_before_starting_over():
    m = machine("lobby")
    m.lost()
    for _ in range(UNUSABLE_RESUMES - 1):
        assert m.timer_fired() == [OpenSession(resume=True)]
        (sleep,) = m.failed(UnusableStream("the stream ended before its open frame"))
        assert isinstance(sleep, Sleep)
    assert m.timer_fired() == [OpenSession(resume=True)]
    deliver, reopen = m.failed(UnusableStream("again"))
    assert isinstance(deliver, Deliver) and reopen == OpenSession(resume=False)


def test_a_usable_open_resets_the_unusable_count():
    m = machine("lobby")
    m.lost()
    for _ in range(UNUSABLE_RESUMES - 1):
        m.timer_fired()
        m.failed(UnusableStream("x"))
    m.timer_fired()
    m.opened()
    m.lost()
    m.timer_fired()
    assert isinstance(m.failed(UnusableStream("x"))[0], Sleep)  # counting from 0 again


def test_rate_limited_waits_at_least_retry_after():
    m = machine()
    m.lost()
    m.timer_fired()
    (sleep,) = m.failed(RateLimited(retryAfter=5))
    assert isinstance(sleep, Sleep) and sleep.seconds >= 5
    (sleep,) = m.failed(RateLimited())  # no retryAfter: a polite second
    assert isinstance(sleep, Sleep) and sleep.seconds >= 1


def test_replaced_stops_and_nothing_reconnects_after():
    m = machine("lobby")
    assert m.closing(Closing("close", "token_expired", True)) == []
    assert m.closing(Closing("close", "replaced", False)) == [Stop("replaced")]
    assert m.ended is not None and m.ended.reason == "replaced"
    assert m.lost() == [] and m.timer_fired() == [] and m.failed(ConnectionLost("x")) == []
    step = m.request_step(UnknownSession(), 1)
    assert isinstance(step, GiveUp) and isinstance(step.error, SessionEnded)
    m.stop(SessionEnded("closed"))
    assert m.ended.reason == "replaced"  # the first reason stays


def test_request_steps():
    m = machine("lobby")
    assert m.request_step(ConnectionLost("x"), 1) == AwaitReconnect()
    assert m.request_step(UnknownSession(), 1) == AwaitReconnect()
    retry = m.request_step(RateLimited(retryAfter=0.5), 1)
    assert isinstance(retry, RetryAfter) and retry.seconds >= 0.5
    assert m.request_step(BrokerUnavailable(), 1) == RetryAfter(m.backoff.base)
    refused = ForbiddenRoom()
    assert m.request_step(refused, 1) == GiveUp(refused)
    assert m.connect_retry(RateLimited(retryAfter=1), 1) >= 1  # type: ignore[operator]
    assert m.connect_retry(ForbiddenRoom(), 1) is None


def test_dead_stream_detection_uses_the_gateways_ping_values():
    m = machine()
    assert m.silence_limit == 1.5  # pingInterval 1000 ms + pingTimeout 500 ms
    assert not m.is_dead(1.4) and m.is_dead(1.6)
