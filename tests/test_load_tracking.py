"""The load tests' sequence bookkeeping (pure)."""

from __future__ import annotations

from loadtests._tracking import SequenceTracker


def test_in_order_is_clean():
    t = SequenceTracker()
    for seq in range(5, 10):  # a late joiner starts at whatever it sees first
        assert t.see("a", seq) == ("ok", 0)
    assert (t.lost, t.duplicates, t.out_of_order) == (0, 0, 0)


def test_gap_duplicate_and_reorder():
    t = SequenceTracker()
    t.see("a", 1)
    assert t.see("a", 4) == ("ok", 2)
    assert t.see("a", 4) == ("duplicate", 0)
    assert t.see("a", 2) == ("out-of-order", 0)
    assert (t.lost, t.duplicates, t.out_of_order) == (1, 1, 1)


def test_abandoned_publishes_are_not_lost():
    t = SequenceTracker()
    t.see("a", 1, abandoned=0)
    assert t.see("a", 3, abandoned=1) == ("ok", 0)  # seq 2 failed at the sender
    assert t.see("a", 5, abandoned=1) == ("ok", 1)  # seq 4 did not fail: lost
    assert t.lost == 1


def test_senders_are_independent():
    t = SequenceTracker()
    t.see("a", 1), t.see("b", 7), t.see("a", 2), t.see("b", 8)
    assert t.lost == 0
