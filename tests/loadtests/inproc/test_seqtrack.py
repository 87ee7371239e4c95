"""Loss, duplicate, reorder and reset accounting."""

import json
import resource
import subprocess
import sys
from pathlib import Path

from locust.env import Environment

from rtcap.loadtests.transports import metrics
from rtcap.loadtests.transports.seqtrack import SeqTracker, Verdict

ROOT = Path(__file__).resolve().parents[3]


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
    assert tracker.feed(1000) is Verdict.GAP
    assert (tracker.lost, tracker.gaps) == (998, 1)
    assert tracker.remembered_missing() == 10
    # Within the window a late arrival is still recognised; before it, the number stays lost.
    assert tracker.feed(995) is Verdict.LATE
    assert tracker.feed(500) is Verdict.DUPLICATE
    assert (tracker.lost, tracker.reordered, tracker.duplicated) == (997, 1, 1)


SPARSE_FEED = """
import json, time, tracemalloc
from rtcap.loadtests.transports.seqtrack import SeqTracker
tracker = SeqTracker()
tracemalloc.start()
started = time.perf_counter()
verdicts = [tracker.feed(s).value for s in (1, 1_800_000_000_000, 1_800_000_000_001, 1_800_000_000_005,
                                            1_800_000_000_003)]
elapsed = time.perf_counter() - started
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"verdicts": verdicts, "elapsed": elapsed, "peak": peak, "summary": tracker.summary(),
                  "remembered": tracker.remembered_missing()}))
"""


def _cap_memory() -> None:
    # A tracker that materialises the gap must fail this test, not exhaust the machine's memory.
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_a_sparse_id_gap_is_counted_by_its_size_in_bounded_time_and_memory() -> None:
    # Epoch-millisecond ids: the gap between two events is a trillion numbers; none of them is materialised.
    done = subprocess.run([sys.executable, "-c", SPARSE_FEED], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          preexec_fn=_cap_memory)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert found["verdicts"] == ["in_order", "gap", "in_order", "gap", "late"]
    assert found["elapsed"] < 0.5 and found["peak"] < 2 * 2**20
    assert found["summary"]["gaps"] == 2 and found["summary"]["lost"] == 1_800_000_000_000 - 2 + 3 - 1
    assert found["remembered"] <= SeqTracker().window


def test_many_gaps_keep_a_bounded_number_of_ranges() -> None:
    tracker = SeqTracker(max_gaps=8)
    for seq in range(1, 2001, 2):  # every other event lost: a thousand gaps
        tracker.feed(seq)
    assert (tracker.lost, tracker.gaps) == (999, 999)
    assert tracker.remembered_missing() == 8
    assert tracker.feed(1998) is Verdict.LATE  # among the newest gaps
    assert tracker.feed(20) is Verdict.DUPLICATE  # long forgotten: counted lost for good


def test_a_restarted_numbering_with_fresh_publish_times_is_one_reset() -> None:
    tracker = SeqTracker()
    for seq in range(1, 301):
        tracker.feed(seq, 1000.0 + seq / 20)
    # The target restarted: it numbers from 1 again, and the subscriber's first new event is number 40.
    verdicts = [tracker.feed(seq, 2000.0 + seq / 20) for seq in range(40, 60)]
    assert verdicts == [Verdict.RESET] + [Verdict.IN_ORDER] * 19
    assert (tracker.resets, tracker.duplicated, tracker.lost, tracker.highest) == (1, 0, 0, 59)
    assert tracker.summary()["resets"] == 1


def test_a_replay_of_old_events_stays_duplicates() -> None:
    tracker = SeqTracker()
    for seq in range(1, 301):
        tracker.feed(seq, 1000.0 + seq / 20)
    # The same events again (same publish times): a replayed history, not a new numbering.
    assert {tracker.feed(seq, 1000.0 + seq / 20) for seq in range(1, 50)} == {Verdict.DUPLICATE}
    assert (tracker.resets, tracker.duplicated) == (0, 49)


def test_without_publish_times_a_drop_to_the_first_numbers_is_a_reset() -> None:
    tracker = SeqTracker()
    for seq in range(1, 301):
        tracker.feed(seq)
    assert tracker.feed(299) is Verdict.DUPLICATE  # a repeat of a recent event
    assert tracker.feed(1) is Verdict.RESET
    assert [tracker.feed(seq) for seq in (2, 3, 5)] == [Verdict.IN_ORDER, Verdict.IN_ORDER, Verdict.GAP]
    assert (tracker.resets, tracker.duplicated, tracker.lost) == (1, 1, 1)


def test_a_reset_is_emitted_as_a_per_second_counter_and_a_sequence_failure() -> None:
    environment = Environment()
    counted: list[tuple[str, str, int]] = []
    failures: list[str] = []

    def on_counter(transport: str, name: str, value: int, **_kwargs: object) -> None:
        counted.append((transport, name, value))

    def on_request(name: str, exception: BaseException | None = None, **_kwargs: object) -> None:
        if exception is not None:
            failures.append(f"{name}: {exception}")

    metrics.stream_counters.add_listener(on_counter)
    environment.events.request.add_listener(on_request)
    try:
        tracker = SeqTracker()
        for seq in (1, 2, 3):
            metrics.track_sequence(environment, "sse", tracker, seq, 1000.0 + seq)
        assert metrics.track_sequence(environment, "sse", tracker, 1, 2000.0) is Verdict.RESET
        metrics.flush_counts()  # counters go out per second
    finally:
        metrics.stream_counters.remove_listener(on_counter)
    assert counted == [("sse", "seq_resets", 1)]
    assert failures == ["sequence: reset: the numbering started again (seq went down)"]
    assert "seq_resets" in metrics.STREAM_COUNTERS


def test_a_lossy_stream_adds_one_failure_row_per_kind_to_locusts_statistics() -> None:
    """Locust keeps a failure row per distinct message: a message naming the seq would add one per gap, for the
    whole run, and ship them all from every worker."""
    from locust.stats import RequestStats

    environment = Environment()
    environment.stats = RequestStats()

    def on_request(request_type: str, name: str, response_time: float, response_length: int,
                   exception: BaseException | None = None, **_kwargs: object) -> None:
        if exception is not None:
            environment.stats.log_error(request_type, name, exception)

    environment.events.request.add_listener(on_request)
    tracker = SeqTracker()
    seqs = [s for s in range(1, 1001) if s % 10] + [995, 2000, 10]  # 99 gaps, a duplicate, a gap, a late one
    for seq in seqs:
        metrics.track_sequence(environment, "sse", tracker, seq, 1000.0 + seq)
    metrics.flush_counts()
    rows = {repr(error.error): error.occurrences for error in environment.stats.errors.values()}
    assert rows == {"SequenceError('gap: events missing before a received seq')": 100,
                    "SequenceError('duplicate: a seq received again')": 1,
                    "SequenceError('late: a seq arrived after a later one')": 1}, rows


def test_text_sequences_count_duplicates_and_late_arrivals_but_no_loss() -> None:
    tracker = SeqTracker()
    verdicts = [tracker.feed(s) for s in ("1700:0", "1700:1", "1700:1", "1701:0", "1700:2")]
    assert verdicts == [Verdict.IN_ORDER, Verdict.IN_ORDER, Verdict.DUPLICATE, Verdict.IN_ORDER, Verdict.LATE]
    assert (tracker.duplicated, tracker.reordered, tracker.lost) == (1, 1, 0)


def test_text_sequences_newer_than_everything_after_a_smaller_one_are_a_reset() -> None:
    tracker = SeqTracker()
    tracker.feed("b:1", 10.0)
    tracker.feed("b:2", 11.0)
    assert tracker.feed("a:1", 5.0) is Verdict.LATE
    assert tracker.feed("a:0", 20.0) is Verdict.RESET
    assert tracker.feed("a:1", 21.0) is Verdict.DUPLICATE  # still remembered from before
    assert (tracker.resets, tracker.reordered, tracker.highest) == (1, 1, "a:0")
