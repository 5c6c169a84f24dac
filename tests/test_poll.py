"""The one poll loop: it stops at the first wanted answer, reads at least once however short the
time, and hands back the last answer it saw when the time runs out (for the error message)."""
from __future__ import annotations

from provision.facts.poll import poll


def test_poll_stops_at_the_first_wanted_answer():
    answers = iter([1, 2, 3, 4])
    assert poll(lambda: next(answers), lambda n: n == 3, 5, 0) == (True, 3)


def test_poll_gives_the_last_answer_when_the_time_runs_out_and_reads_at_least_once():
    reads = []
    assert poll(lambda: reads.append(1) or len(reads), lambda n: False, 0, 0.01) == (False, 1)
    done, last = poll(lambda: reads.append(1) or len(reads), lambda n: False, 0.1, 0.01)
    assert not done and last > 2
