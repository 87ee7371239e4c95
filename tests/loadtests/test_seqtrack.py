"""Loss, duplicate and reorder accounting."""

from loadtests.seqtrack import SeqTracker, Verdict


def test_in_order_stream_has_no_anomalies() -> None:
    tracker = SeqTracker()
    assert [tracker.feed(s) for s in range(10, 20)] == [Verdict.IN_ORDER] * 10
    assert (tracker.lost, tracker.duplicated, tracker.reordered, tracker.received) == (0, 0, 0, 10)


def test_gap_counts_lost_then_late_arrival_counts_reordered() -> None:
    tracker = SeqTracker()
    tracker.feed(1)
    assert tracker.feed(4) is Verdict.GAP
    assert tracker.lost == 2
    assert tracker.feed(3) is Verdict.LATE
    assert (tracker.lost, tracker.reordered) == (1, 1)


def test_duplicates_are_counted_once_each() -> None:
    tracker = SeqTracker()
    for seq in (1, 2, 2, 3, 1):
        tracker.feed(seq)
    assert (tracker.duplicated, tracker.lost, tracker.reordered) == (2, 0, 0)


def test_a_late_event_seen_twice_is_a_duplicate_the_second_time() -> None:
    tracker = SeqTracker()
    for seq in (1, 3, 2, 2):
        tracker.feed(seq)
    assert (tracker.lost, tracker.reordered, tracker.duplicated) == (0, 1, 1)


def test_missing_window_is_bounded() -> None:
    tracker = SeqTracker(window=10)
    tracker.feed(1)
    tracker.feed(1000)
    assert tracker.lost == 998
    assert len(tracker._missing) <= 10


def test_text_sequences_count_duplicates_and_late_arrivals_but_no_loss() -> None:
    tracker = SeqTracker()
    verdicts = [tracker.feed(s) for s in ("1700:0", "1700:1", "1700:1", "1701:0", "1700:2")]
    assert verdicts == [Verdict.IN_ORDER, Verdict.IN_ORDER, Verdict.DUPLICATE, Verdict.IN_ORDER, Verdict.LATE]
    assert (tracker.duplicated, tracker.reordered, tracker.lost) == (1, 1, 0)
