"""The fake clock (advance moves both clocks, jump the wall clock alone, waiters wake on their fake deadline or
their event) and the jump detector's tolerance. No real-time sleeps: waits are bounded joins on threads that
finish as soon as the fake clock lets them."""
import threading

import pytest

from polling import wait_until
from tray_alerts.clock import JUMP_TOLERANCE, FakeClock, JumpDetector


class ProbeEvent(threading.Event):
    """An event that counts how often a waiter looked at it: once it has, the waiter's deadline is fixed."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0
        self.looked = threading.Event()

    def is_set(self) -> bool:
        self.looks += 1
        self.looked.set()
        return super().is_set()


class Waiter:
    """`clock.wait(event, seconds)` in a thread of its own; what it returned and the clock's time then."""

    def __init__(self, clock: FakeClock, seconds: float, event: threading.Event | None = None):
        self.clock, self.seconds = clock, seconds
        self.event = event if event is not None else ProbeEvent()
        self.result: bool | None = None
        self.returned_at: float | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if isinstance(self.event, ProbeEvent):
            assert self.event.looked.wait(10), "the waiter never started waiting"

    def _run(self) -> None:
        result = self.clock.wait(self.event, self.seconds)
        self.returned_at = self.clock.monotonic()
        self.result = result

    def finished(self, timeout: float = 10.0) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def still_waiting_after_another_look(self) -> bool:
        """True if, after looking at its event once more (the clock moved or its poll came round), it waits on."""
        looks = self.event.looks
        wait_until(lambda: self.event.looks > looks or not self.thread.is_alive(), "another look", timeout=10)
        return self.thread.is_alive()


# ---- the fake clock --------------------------------------------------------------------------------------------


def test_a_fake_clock_starts_at_a_fixed_time_or_the_one_given():
    assert FakeClock().time() == 1_780_000_000.0  # the same every run: expected times in tests are stable
    assert FakeClock(start=5.0).time() == 5.0


def test_time_stands_still_until_told():
    clock = FakeClock()
    wall, mono = clock.time(), clock.monotonic()
    assert (clock.time(), clock.monotonic()) == (wall, mono)


@pytest.mark.parametrize("steps", [[30.0], [0.5, 0.25], [3600.0, 86400.0, 1.0]])
def test_advance_moves_both_clocks(steps):
    clock = FakeClock()
    wall, mono = clock.time(), clock.monotonic()
    for step in steps:
        clock.advance(step)
    assert (clock.time(), clock.monotonic()) == (wall + sum(steps), mono + sum(steps))


@pytest.mark.parametrize("jump", [3 * 86400.0, -600.0])
def test_jump_moves_the_wall_clock_alone(jump):
    clock = FakeClock()
    wall, mono = clock.time(), clock.monotonic()
    clock.jump(jump)
    assert (clock.time(), clock.monotonic()) == (wall + jump, mono)


def test_a_waiter_wakes_when_its_fake_time_has_passed_and_not_before():
    clock = FakeClock()
    start = clock.monotonic()
    waiter = Waiter(clock, 10.0)
    clock.advance(4.0)
    clock.advance(5.5)
    assert waiter.still_waiting_after_another_look()  # 9.5 of 10 s
    clock.advance(0.5)
    assert waiter.finished(), "the waiter did not wake at its deadline"
    assert waiter.result is False and waiter.returned_at == start + 10.0


def test_a_wall_clock_jump_does_not_end_a_wait():
    clock = FakeClock()
    waiter = Waiter(clock, 10.0)
    clock.jump(7 * 86400.0)
    assert waiter.still_waiting_after_another_look()
    clock.advance(10.0)
    assert waiter.finished() and waiter.result is False


def test_an_event_set_while_waiting_wakes_the_waiter_without_the_clock_moving():
    clock = FakeClock()
    start = clock.monotonic()
    waiter = Waiter(clock, 3600.0)
    waiter.event.set()
    assert waiter.finished(), "setting the event did not wake the waiter"
    assert waiter.result is True and waiter.returned_at == start


def test_an_event_already_set_returns_at_once():
    clock = FakeClock()
    event = threading.Event()
    event.set()
    waiter = Waiter(clock, 3600.0, event)
    assert waiter.finished() and waiter.result is True


@pytest.mark.parametrize("seconds", [0.0, -5.0, -0.5])
def test_no_time_to_wait_returns_at_once(seconds):
    clock = FakeClock()
    start = clock.monotonic()
    waiter = Waiter(clock, seconds)
    assert waiter.finished(), "a wait of no time did not return"
    assert waiter.result is False and waiter.returned_at == start


def test_several_waiters_wake_in_the_order_of_their_deadlines():
    clock = FakeClock()
    start = clock.monotonic()
    short, long = Waiter(clock, 5.0), Waiter(clock, 50.0)
    clock.advance(5.0)
    assert short.finished() and short.returned_at == start + 5.0
    assert long.still_waiting_after_another_look()
    clock.advance(45.0)
    assert long.finished() and long.returned_at == start + 50.0


# ---- the jump detector -----------------------------------------------------------------------------------------


def test_the_default_tolerance_is_two_seconds():
    assert JUMP_TOLERANCE == 2.0
    clock = FakeClock()
    detector = JumpDetector(clock)
    clock.jump(2.0)
    assert detector.check() == 0.0  # within the tolerance
    clock.jump(0.5)
    assert detector.check() == 2.5  # drift adds up until it is a jump


def test_time_passing_is_no_jump():
    clock = FakeClock()
    detector = JumpDetector(clock)
    assert detector.check() == 0.0
    clock.advance(86400.0)
    assert detector.check() == 0.0


@pytest.mark.parametrize("jump", [3600.0, -3600.0, 2.01, -2.01])
def test_a_jump_is_reported_once_with_its_direction(jump):
    clock = FakeClock()
    detector = JumpDetector(clock)
    clock.advance(100.0)
    clock.jump(jump)
    assert detector.check() == pytest.approx(jump)
    assert detector.check() == 0.0
    clock.advance(60.0)
    assert detector.check() == 0.0


@pytest.mark.parametrize("jump", [2.0, -2.0, 1.5, 0.0])
def test_a_jump_within_the_tolerance_is_ignored(jump):
    clock = FakeClock()
    detector = JumpDetector(clock)
    clock.jump(jump)
    assert detector.check() == 0.0


def test_after_a_jump_drift_is_measured_from_there():
    clock = FakeClock()
    detector = JumpDetector(clock)
    clock.jump(100.0)
    assert detector.check() == 100.0
    clock.jump(1.5)
    assert detector.check() == 0.0
    clock.jump(1.0)
    assert detector.check() == 2.5


def test_a_tolerance_of_its_own():
    clock = FakeClock()
    detector = JumpDetector(clock, tolerance=10.0)
    clock.jump(10.0)
    assert detector.check() == 0.0
    clock.jump(-25.0)
    assert detector.check() == -15.0


def test_peek_tells_without_taking_and_the_offset_moves_only_when_a_jump_is_taken():
    clock = FakeClock()
    detector = JumpDetector(clock)
    origin = detector.offset
    assert origin == clock.time() - clock.monotonic()  # wall minus monotonic
    clock.advance(50.0)
    clock.jump(1.0)
    assert detector.peek() == 0.0 and detector.offset == origin  # time passing and drift within the tolerance
    clock.jump(99.0)
    assert detector.peek() == 100.0 and detector.peek() == 100.0  # told, not taken
    assert detector.offset == origin
    assert detector.check() == 100.0 and detector.offset == origin + 100.0
    assert detector.peek() == 0.0
