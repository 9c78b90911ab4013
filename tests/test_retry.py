"""Retries as tables: the backoff (bounds, doubling, cap, jitter with a seeded rng, Retry-After), what a channel's
answer makes of a row (delivered / not retried / retrying at the next time / given up only after enough tries
and past its expiry), and when a waiting row has expired."""
import random

import pytest

from tray_alerts.delivery import Outcome
from tray_alerts.model import Alert, Level
from tray_alerts.outbox import RESULT_DELIVERED, RESULT_FAILED, RESULT_RETRYING, RetryPolicy, answer_for, expired
from tray_alerts.pipeline import HOLD_GROUP, HOLD_MUTE, HOLD_NONE, HOLD_RETRY, Delivery

NOW = 1_780_000_000.0
STEADY = RetryPolicy(first=5, longest=60, expiry=3600, jitter=0)  # no jitter: exact times


def row(attempts=0, expires_at=NOW + 3600, hold=HOLD_NONE):
    return Delivery(1, "slack", "disk", "ep", "firing", Alert("disk", Level.ERROR, "m"), attempts=attempts,
                    hold=hold, expires_at=expires_at, created_at=NOW - 100)


# ---- the backoff -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attempts, delay", [(0, 5), (1, 5), (2, 10), (3, 20), (4, 40), (5, 60), (6, 60), (40, 60)])
def test_the_wait_doubles_from_the_first_up_to_the_longest(attempts, delay):
    assert STEADY.delay(attempts) == delay


def test_a_sub_second_backoff_is_kept():
    assert RetryPolicy(first=0.25, jitter=0).delay(1) == 0.25
    assert RetryPolicy(first=0.25, jitter=0).delay(1, retry_after=0.5) == 0.5


@pytest.mark.parametrize("retry_after, delay", [(None, 10), (0.0, 10), (3.0, 10), (10.0, 10), (90.0, 90),
                                                (3600.0, 3600)])
def test_retry_after_is_honoured_but_never_makes_the_wait_shorter(retry_after, delay):
    assert STEADY.delay(2, retry_after) == delay  # Retry-After may even exceed the longest wait


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("attempts, base", [(1, 5.0), (2, 10.0), (3, 20.0), (8, 600.0), (30, 600.0)])
def test_the_documented_defaults_with_a_quarter_jitter_either_way(seed, attempts, base):
    policy = RetryPolicy()  # README: retry_backoff 5s, retry_backoff_max 10m, delivery_expiry 24h
    assert policy.expiry == 24 * 3600
    delay = policy.delay(attempts, rng=random.Random(seed))
    assert delay == base * random.Random(seed).uniform(0.75, 1.25)  # one draw from the rng it was given
    assert 0.75 * base <= delay <= 1.25 * base


def test_jitter_spreads_the_waits_over_the_whole_band():
    rng = random.Random(42)
    delays = [RetryPolicy(first=100, jitter=0.5).delay(1, rng=rng) for _ in range(400)]
    assert 50 <= min(delays) < 55 and 145 < max(delays) <= 150


def test_jitter_applies_to_the_capped_wait_and_retry_after_still_wins():
    policy = RetryPolicy(first=5, longest=60, jitter=0.25)
    assert policy.delay(10, rng=random.Random(3)) == 60 * random.Random(3).uniform(0.75, 1.25)
    assert policy.delay(10, retry_after=500, rng=random.Random(3)) == 500


def test_without_an_rng_the_module_random_is_used():
    random.seed(11)
    expected = 5 * random.uniform(0.75, 1.25)
    random.seed(11)
    assert RetryPolicy().delay(1) == expected
    assert RetryPolicy(jitter=0).delay(2) == 10


# ---- a channel's answer ----------------------------------------------------------------------------------------


def refused(retry_after=None, detail="connection refused"):
    return Outcome(False, detail, retryable=True, retry_after=retry_after)


@pytest.mark.parametrize("attempts, detail", [(0, ""), (1, "delivered on retry 1"), (4, "delivered on retry 4")])
def test_a_delivery_is_done(attempts, detail):
    answer = answer_for(row(attempts), Outcome(True), NOW, STEADY)
    assert (answer.result, answer.detail, answer.at) == (RESULT_DELIVERED, detail, None)


@pytest.mark.parametrize("attempts, detail", [(0, "HTTP 403"), (2, "not retried: HTTP 403")])
def test_a_failure_not_worth_retrying_is_final_at_once(attempts, detail):
    answer = answer_for(row(attempts), Outcome(False, "HTTP 403", retryable=False), NOW, STEADY)
    assert (answer.result, answer.detail, answer.at) == (RESULT_FAILED, detail, None)


@pytest.mark.parametrize("attempts, retry_after, at", [
    (0, None, NOW + 5),  # the first try failed: the second after `first`
    (1, None, NOW + 10),
    (2, None, NOW + 20),
    (3, None, NOW + 40),
    (0, 120.0, NOW + 120),  # Retry-After
])
def test_a_retryable_failure_is_tried_again_after_the_backoff(attempts, retry_after, at):
    answer = answer_for(row(attempts), refused(retry_after), NOW, STEADY)
    assert (answer.result, answer.at) == (RESULT_RETRYING, at)
    assert answer.detail.startswith(f"retry {attempts} failed: connection refused" if attempts
                                    else "connection refused — will retry at ")


@pytest.mark.parametrize("attempts, expires_at, result", [
    # not before three tries (MIN_ATTEMPTS), however long ago it expired (a laptop asleep for a week)
    (0, NOW - 86400, RESULT_RETRYING),
    (1, NOW - 86400, RESULT_RETRYING),
    (2, NOW - 86400, RESULT_FAILED),  # the third try failed and its time is up
    # after enough tries: given up when the next try would come at or after the expiry
    (2, NOW + 19, RESULT_FAILED),
    (2, NOW + 20, RESULT_FAILED),  # the next try (NOW + 20) would be exactly at the expiry
    (2, NOW + 21, RESULT_RETRYING),
    (5, NOW + 59, RESULT_FAILED),
    (5, NOW + 61, RESULT_RETRYING),
])
def test_a_row_is_given_up_only_after_enough_tries_and_past_its_expiry(attempts, expires_at, result):
    answer = answer_for(row(attempts, expires_at), refused(), NOW, STEADY)
    assert answer.result == result
    if result == RESULT_FAILED:
        assert (answer.detail, answer.at) == (f"gave up after {attempts + 1} tries: connection refused", None)


def test_a_long_retry_after_past_the_expiry_gives_up_after_enough_tries():
    assert answer_for(row(1, NOW + 600), refused(retry_after=3600), NOW, STEADY).result == RESULT_RETRYING
    assert answer_for(row(2, NOW + 600), refused(retry_after=3600), NOW, STEADY).result == RESULT_FAILED


def test_the_answer_uses_the_rng_it_is_given():
    policy = RetryPolicy(first=5, longest=60, jitter=0.25)
    answer = answer_for(row(1), refused(), NOW, policy, random.Random(9))
    assert answer.at == NOW + 10 * random.Random(9).uniform(0.75, 1.25)


# ---- expiry of a waiting row -----------------------------------------------------------------------------------


@pytest.mark.parametrize("hold, attempts, now, gone", [
    (HOLD_RETRY, 3, NOW + 3600, True),  # exactly at its expiry
    (HOLD_RETRY, 3, NOW + 3599, False),
    (HOLD_RETRY, 7, NOW + 9999, True),
    (HOLD_RETRY, 2, NOW + 9999, False),  # too few tries: try again first
    (HOLD_NONE, 3, NOW + 9999, False),  # not waiting for a retry
    (HOLD_MUTE, 3, NOW + 9999, False),  # held by a person, not by failures
    (HOLD_GROUP, 3, NOW + 9999, False),
])
def test_a_waiting_row_expires_only_as_a_retry_after_enough_tries_at_its_expiry(hold, attempts, now, gone):
    assert expired(row(attempts, NOW + 3600, hold), now) is gone
