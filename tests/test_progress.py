"""Progress (cryprint.progress): off a terminal, a plain line at the end and at most every
LOG_EVERY_SECONDS; nothing when disabled or when there is nothing to do."""

from __future__ import annotations

import itertools
import re
import sys
from types import SimpleNamespace

import pytest

import cryprint.progress as progress_module
from cryprint.progress import LOG_EVERY_SECONDS, Progress

LINE = re.compile(
    r"^(?P<label>.+): (?P<done>\d+)/(?P<total>\d+) \((?P<percent>\d+) %\), (?P<s>\d+) s$"
)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    # Only the progress module's clock: tqdm, logging and pytest keep the real one.
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def _lines(capsys: pytest.CaptureFixture) -> list[str]:
    captured = capsys.readouterr()
    assert captured.out == ""  # progress goes to stderr only
    return captured.err.splitlines()


def test_stderr_here_is_not_a_terminal() -> None:
    # Under capsys (and in a log file) there is no bar: the precondition of the tests below.
    assert not sys.stderr.isatty()


def test_lines_every_interval_and_at_the_end(clock: Clock, capsys: pytest.CaptureFixture) -> None:
    assert LOG_EVERY_SECONDS == 10.0  # the times below are chosen around it
    with Progress(6, "embedding") as progress:
        steps = [1.0, 8.75, 0.25, 5.0, 4.5, 0.75]
        # Seconds after the start (exact in binary): 1, 9.75, 10, 15, 19.5, 20.25.
        for step in steps:
            clock.now += step
            progress.update()
    lines = _lines(capsys)
    assert lines == [
        "embedding: 3/6 (50 %), 10 s",  # the first update 10 s after the start
        "embedding: 6/6 (100 %), 20 s",  # the end (19.5 s was only 9.5 s after the line)
    ]


def test_the_end_is_printed_even_right_after_a_line(
    clock: Clock, capsys: pytest.CaptureFixture
) -> None:
    with Progress(3, "scoring") as progress:
        clock.now += LOG_EVERY_SECONDS
        progress.update()
        clock.now += 0.5
        progress.update()
        clock.now += 0.5
        progress.update()
    assert _lines(capsys) == ["scoring: 1/3 (33 %), 10 s", "scoring: 3/3 (100 %), 11 s"]


def test_a_quick_job_prints_only_its_end(clock: Clock, capsys: pytest.CaptureFixture) -> None:
    with Progress(4, "trimming") as progress:
        for _ in range(4):
            clock.now += 0.1
            progress.update()
    assert _lines(capsys) == ["trimming: 4/4 (100 %), 0 s"]


def test_counts_add_up_to_total(clock: Clock, capsys: pytest.CaptureFixture) -> None:
    with Progress(10, "shards") as progress:
        for count in (3, 4, 3):
            progress.update(count)
        assert progress.done == 10
    assert _lines(capsys) == ["shards: 10/10 (100 %), 0 s"]


def test_lines_are_at_least_an_interval_apart(clock: Clock, capsys: pytest.CaptureFixture) -> None:
    # Irregular work: the time of each line, read back from when its count was reached.
    steps = [0.3, 2.5, 7.1, 0.1, 12.0, 0.4, 9.7, 0.2, 0.3, 3.3, 25.0, 1.0, 0.5, 9.4, 0.6, 0.1]
    reached_at = {}
    with Progress(len(steps), "recordings") as progress:
        for done, step in enumerate(steps, start=1):
            clock.now += step
            reached_at[done] = clock.now
            progress.update()
    lines = [LINE.match(line) for line in _lines(capsys)]
    assert all(lines)
    printed = [int(match["done"]) for match in lines]
    assert printed[-1] == len(steps)  # the end
    times = [reached_at[done] for done in printed]
    for before, after in itertools.pairwise(times[:-1]):
        assert after - before >= LOG_EVERY_SECONDS
    # And no longer silence than needed: an update LOG_EVERY_SECONDS after the last line prints.
    start = 1000.0
    last = start
    for done in range(1, len(steps) + 1):
        if reached_at[done] - last >= LOG_EVERY_SECONDS:
            assert done in printed, done
            last = reached_at[done]
    for match in lines:
        done = int(match["done"])
        assert match["label"] == "recordings" and int(match["total"]) == len(steps)
        assert int(match["percent"]) == round(100 * done / len(steps))
        assert int(match["s"]) == round(reached_at[done] - start)


@pytest.mark.parametrize(("total", "enabled"), [(5, False), (0, True), (0, False)])
def test_nothing_is_printed_when_disabled_or_empty(
    total: int, enabled: bool, clock: Clock, capsys: pytest.CaptureFixture
) -> None:
    with Progress(total, "embedding", enabled=enabled) as progress:
        for _ in range(max(total, 2)):
            clock.now += 2 * LOG_EVERY_SECONDS
            progress.update()
    assert progress.enabled is False
    assert _lines(capsys) == []


def test_disabled_progress_still_counts(clock: Clock) -> None:
    with Progress(5, "embedding", enabled=False) as progress:
        progress.update(2)
        progress.update(3)
    assert progress.done == progress.total == 5


def test_on_a_terminal_a_bar_replaces_the_lines(
    clock: Clock, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with Progress(3, "embedding") as progress:
        for _ in range(3):
            clock.now += 2 * LOG_EVERY_SECONDS
            progress.update()
        assert progress.done == 3
    assert not any(LINE.match(line) for line in capsys.readouterr().err.splitlines())
