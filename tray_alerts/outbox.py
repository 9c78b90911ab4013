"""The outbox: the only way to a channel. Every notification is a row (written with the state change that caused
it); a pass takes the rows that are due, runs them through the stages, hands the ones to send to their channel's
worker, and records each answer and its history line when the channel gives it. Retries back off and expire by
attempts and time awake, so a clock jump neither drops nor stalls them."""
from __future__ import annotations

import logging
import os
import random
import secrets
import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable, Iterable

from .clock import Clock, JumpDetector
from .delivery import Dispatcher, Outcome
from .display import clock as clock_text, duration
from .model import Alert, from_timestamp
from .pipeline import (DROP, GROUP, HOLD, HOLD_GROUP, HOLD_MUTE, HOLD_NONE, HOLD_QUIET, HOLD_RETRY, HOLD_SNOOZE,
                       SEND, SUMMARISE, SUMMARY_KIND, Conditions, Delivery, Verdict, counts_for_storm, run_stages,
                       summarised_channels)
from .state import DELIVERED, DROPPED, FAILED, StateStore, StoreFault, Transaction
from .storm import StormControl, summary_alert

log = logging.getLogger(__name__)

LEASE_MARGIN = 30.0  # a claim outlives the delivery timeout by this much, then another process may take over
MAX_BATCH = 20  # alerts in one grouped message
MIN_ATTEMPTS = 3  # never give up on a delivery before this many tries, however long it waited
RECORD_GRACE = 0.002  # seconds an answer waits to ride with another write before its worker writes it
PASS_LIMIT = 200  # rows looked at in one pass
RELATIVE_HOLDS = (HOLD_RETRY, HOLD_GROUP, HOLD_NONE)  # waits counted from "now": they move with a clock jump
PERSON_HOLDS = (HOLD_MUTE, HOLD_SNOOZE)  # waits until a time a person chose: moved only when the clock goes back
# HOLD_QUIET waits until a time of day (quiet hours end): never moved
# results a waiter is told
RESULT_DELIVERED, RESULT_FAILED, RESULT_RETRYING, RESULT_DROPPED = "delivered", "failed", "retrying", "dropped"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, honouring Retry-After; give up after `expiry` seconds awake."""

    first: float = 5.0
    longest: float = 600.0
    expiry: float = 24 * 3600.0
    jitter: float = 0.25

    def delay(self, attempts: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before try number `attempts + 1`."""
        base = min(self.longest, self.first * 2 ** max(0, attempts - 1))
        jittered = base * (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return max(jittered, retry_after or 0.0)


@dataclass(frozen=True)
class Answer:
    """What becomes of a row after its channel answered: done (delivered / failed) or tried again at `at`."""

    result: str
    detail: str
    at: float | None = None
    possible_repeat: bool = False  # the next try may repeat what the peer already has


def answer_for(row: Delivery, outcome: Outcome, now: float, policy: RetryPolicy,
               rng: random.Random | None = None) -> Answer:
    """Pure: a channel's answer to one attempt of a row, as the row's next state."""
    tries = row.attempts + 1
    if outcome.ok:
        return Answer(RESULT_DELIVERED, f"delivered on retry {row.attempts}" if row.attempts else "")
    if not outcome.retryable:
        return Answer(RESULT_FAILED, f"not retried: {outcome.detail}" if row.attempts else outcome.detail)
    next_at = now + policy.delay(tries, outcome.retry_after, rng)
    if tries >= MIN_ATTEMPTS and next_at >= row.expires_at:
        return Answer(RESULT_FAILED, f"gave up after {tries} tries: {outcome.detail}")
    failed = f"retry {row.attempts} failed: {outcome.detail}" if row.attempts else outcome.detail
    return Answer(RESULT_RETRYING, f"{failed} — will retry at {clock_text(from_timestamp(next_at))}", next_at,
                  outcome.may_have_arrived)


def expired(row: Delivery, now: float) -> bool:
    """Pure: a retried row whose time (awake) ran out, after enough tries."""
    return row.hold == HOLD_RETRY and row.attempts >= MIN_ATTEMPTS and now >= row.expires_at


AnswerCallback = Callable[[Delivery, str, str], bool]  # True if someone waited for that answer
ToldCallback = Callable[[Transaction, Delivery, float], None]


class Outbox:
    """Runs the outbox of one process: passes over due rows, channel workers, answers, claims."""

    def __init__(self, store: StateStore, dispatcher: Dispatcher, policy: RetryPolicy, clock: Clock,
                 conditions: Callable[[], Conditions], storm: StormControl, on_answer: AnswerCallback,
                 on_never_told: ToldCallback):
        self.store, self.dispatcher, self.policy, self.clock = store, dispatcher, policy, clock
        self.storm = storm
        self.owner = owner_id()
        self._conditions = conditions
        self._on_answer = on_answer
        self._on_never_told = on_never_told
        self._lock = threading.Lock()
        self._in_flight: dict[tuple[str, str, str], deque[Delivery]] = {}  # per key: the row sending, then waiting
        self._local: set[int] = set()  # the ids in _in_flight, kept with it (every write asks for them)
        self._blocked: set[tuple[str, str, str]] = set()  # keys whose row failed: newer rows wait for a pass
        self._renewed_at = clock.time()
        self._recorded = threading.Condition()  # guards the answers not yet written
        self._unrecorded: list[tuple[Delivery, Outcome, float, float]] = []  # row, outcome, when, clock offset
        self._buffered = 0  # answers buffered so far
        self._written = 0  # of those, how many are on disk
        self.jumps = JumpDetector(clock)  # taken by the first rider of every write (background.py)
        store.riders.append(self._write_answers)
        self.wake = threading.Event()
        self.closed = False

    @property
    def lease_seconds(self) -> float:
        return self.dispatcher.timeout + LEASE_MARGIN

    # ---- a pass --------------------------------------------------------------------------------------------

    def run_due(self) -> int:
        """One pass: queue due storm summaries and send every row that is due; returns how many rows were handed
        to channels."""
        now = self.clock.time()
        summary_at = self.storm.next_summary_at()
        renew = bool(self.local_ids()) and now >= self._renewed_at + self.lease_seconds / 2
        if not renew and (summary_at is None or summary_at > now) and not self.store.due_keys_waiting(now):
            return 0  # nothing to do: no write
        claimed: list[Delivery] = []
        groups: dict[str, list[Delivery]] = {}
        with self.store.write() as tx:
            self._add_summaries(tx, self.storm.take_summaries(now), now)
            local = self.local_ids()
            due = [row for row in tx.due(now, PASS_LIMIT) if row.id not in local]
            conditions = self._quiet_conditions(tx, due, self._conditions(), now)
            quiet_held: dict[str, list[Delivery]] = {}
            for row in due:
                if expired(row, now):
                    self._give_up(tx, row, now, f"gave up after {row.attempts} tries over"
                                                f" {duration(now - row.created_at)}: {row.last_error}")
                    continue
                if row.channel not in self.dispatcher.channels:
                    tx.retry_later(row, now + self.policy.delay(row.attempts + 1), "channel is not configured now")
                    continue
                verdict = self.judge(row, conditions, now)
                if verdict.action == SEND and row.hold == HOLD_GROUP and self._groups(row.channel):
                    groups.setdefault(row.channel, []).append(row)
                elif verdict.action == SEND:
                    claimed.append(row)
                elif verdict.action == SUMMARISE:
                    quiet_held.setdefault(row.channel, []).append(row)
                else:
                    self.apply(tx, row, verdict, now)
                if row.channel in self.storm.limits:
                    conditions = replace(conditions, gates=self.storm.gates())
            self._summarise_quiet(tx, quiet_held, now)
            tx.claim([row.id for row in claimed] + [row.id for rows in groups.values() for row in rows], self.owner,
                     now + self.lease_seconds)
            self._renew(tx, now)
        self.send(claimed, from_pass=True)
        for channel, rows in groups.items():
            for start in range(0, len(rows), MAX_BATCH):
                self._send_group(channel, rows[start:start + MAX_BATCH])
        return len(claimed) + sum(len(rows) for rows in groups.values())

    def judge(self, row: Delivery, conditions: Conditions, now: float) -> Verdict:
        """The stages' verdict on a row, counted by storm control when it is storm control's to count."""
        verdict = run_stages(row, conditions, now)
        if counts_for_storm(row, verdict):
            self.storm.decide(row.channel, row.alert, now)
        return verdict

    def apply(self, tx: Transaction, row: Delivery, verdict: Verdict, now: float) -> None:
        """Write a verdict that is not "send now": a hold, a group, a drop."""
        if verdict.action == DROP:
            tx.finish(row, DROPPED, verdict.reason, now)
            tx.delivery_line(row, now, None, verdict.reason)
            self._on_answer(row, RESULT_DROPPED, verdict.reason)
            if verdict.hold != HOLD_QUIET:  # quiet hours drop only what recovered meanwhile, and reminders
                self.untell(tx, row, now, verdict.reason)
        elif verdict.action in (HOLD, GROUP) and verdict.until is not None:
            if row.hold != verdict.hold or row.not_before != verdict.until:
                tx.hold(row, verdict.until, verdict.hold, verdict.reason)
                if row.hold != verdict.hold:
                    tx.delivery_line(row, now, None, verdict.reason)

    def _quiet_conditions(self, tx: Transaction, rows: list[Delivery], conditions: Conditions,
                          now: float) -> Conditions:
        """What quiet hours need to know of a pass's rows: which were overtaken while held (a held row whose
        episode is over, or is at a higher level its channel has a row of; a recovery, written during quiet hours,
        of a firing its channel never got), which channels get a summary."""
        policy = conditions.quiet_hours
        if not policy:
            return conditions
        overtaken = set()
        for row in rows:
            if row.channel not in policy.channels or row.kind == SUMMARY_KIND:
                continue
            if row.alert.resolved:
                state = policy.state(row.channel, row.created_at)
                if state is not None and state.quiet and not tx.knows(row):
                    overtaken.add(row.id)
            elif row.hold == HOLD_QUIET:
                current = tx.event(row.event)
                if current is None or current.episode != row.episode or (
                        current.level > row.alert.level and row.kind != "reminder" and tx.knows(row)):
                    overtaken.add(row.id)
        conditions = replace(conditions, overtaken=frozenset(overtaken))
        return replace(conditions, summarised=summarised_channels(rows, conditions, now))

    def _summarise_quiet(self, tx: Transaction, held: dict[str, list[Delivery]], now: float) -> None:
        """The rows quiet hours held for a channel are done: one summary naming them goes instead (like a storm
        cap's, the channel no longer counts as told of what it names)."""
        for channel, rows in held.items():
            events = list(dict.fromkeys(row.event for row in rows))
            count = len(rows)
            summary = summary_alert(f"{count} alert{'s' if count != 1 else ''} held for quiet hours", events,
                                    max(row.alert.level for row in rows), now)
            for row in rows:
                self.apply(tx, row, Verdict(DROP, f"held for quiet hours: named in one summary of {count}"), now)
            self._add_summaries(tx, {channel: summary}, now)

    def next_wake(self) -> float | None:
        """When a pass next has work: a row falling due, a summary, a claim to renew."""
        times = [t for t in (self.store.next_due(), self.storm.next_summary_at()) if t is not None]
        with self._lock:
            if self._in_flight:
                times.append(self.clock.time() + self.lease_seconds / 2)
        return min(times) if times else None

    # ---- sending and answers -------------------------------------------------------------------------------

    def send(self, rows: Iterable[Delivery], from_pass: bool = False) -> list[Delivery]:
        """Hand claimed rows to their channels' workers; a row waits while an older one of its key is sending. A
        key whose row failed stays blocked until a pass takes that row again: newer rows of it are given back
        (and returned: they wait for a pass)."""
        blocked = []
        for row in rows:
            with self._lock:
                if row.key in self._blocked and not from_pass:
                    blocked.append(row)
                    continue
                self._blocked.discard(row.key)
                queue = self._in_flight.setdefault(row.key, deque())
                queue.append(row)
                self._local.add(row.id)
                first = len(queue) == 1
            if first:
                self._submit(row)
        if blocked:
            self._give_back(blocked)
        return blocked

    def forget_idle_keys(self, tx: Transaction) -> int:
        """Unblock keys with nothing left to wait behind (their failed row is done for good and no row of theirs
        is pending): without this, one key per event that ever failed would be kept. Inside a write, so no row of
        this process is added meanwhile; returns how many were forgotten."""
        with self._lock:
            keys = [key for key in self._blocked if key not in self._in_flight]
        idle = {key for key in keys if not tx.key_pending(key)}
        if idle:
            with self._lock:
                self._blocked -= {key for key in idle if key not in self._in_flight}
        return len(idle)

    def blocked_keys(self) -> frozenset[tuple[str, str, str]]:
        """Keys whose oldest row failed and waits for its retry (newer rows must not overtake it)."""
        with self._lock:
            return frozenset(self._blocked)

    def _give_back(self, rows: list[Delivery]) -> None:
        try:
            with self.store.write() as tx:
                tx.release([row.id for row in rows])
        except StoreFault as fault:  # their claims run out and a pass takes them then
            log.error("could not give back %d claimed notification(s): %s", len(rows), fault.reason)

    def _submit(self, row: Delivery) -> None:
        alert = replace(row.alert, possible_repeat=True) if row.possible_repeat else row.alert
        self.dispatcher.submit(row.channel, alert, row.recipient, lambda outcome: self._answered([row], outcome))

    def _send_group(self, channel: str, rows: list[Delivery]) -> None:
        for row in rows:
            with self._lock:
                self._in_flight.setdefault(row.key, deque()).append(row)
                self._local.add(row.id)
        alerts = [replace(row.alert, possible_repeat=True) if row.possible_repeat else row.alert for row in rows]
        self.dispatcher.submit(channel, alerts if len(alerts) > 1 else alerts[0], "",
                               lambda outcome: self._answered(rows, outcome))

    def _answered(self, rows: list[Delivery], outcome: Outcome) -> None:
        """A channel answered (in its worker's thread): tell whoever waits, and have the answer written — by the
        next write of any thread, or by this worker after RECORD_GRACE. The worker sends nothing more until it is
        written, so a crash can repeat at most the one notification per channel whose answer was not yet on disk."""
        if self.closed:  # an answer after shutdown: the claim runs out and the next start sends it again
            log.info("%s answered after shutdown; the next start sends it again, marked as a possible repeat",
                     rows[0].channel)
            return
        now = self.clock.time()
        answers = [(row, answer_for(row, outcome, now, self.policy, _jitter(row, outcome))) for row in rows]
        with self._recorded:  # worked out again when written, as of the answer's time on the clock then in force
            self._unrecorded.extend((row, outcome, now, self.jumps.offset) for row in rows)
            self._buffered += len(answers)
            mine = self._buffered
        awaited = [self._on_answer(row, answer.result, answer.detail) for row, answer in answers]
        if any(awaited):  # whoever waited is likely to write next, and take these along
            with self._recorded:
                self._recorded.wait_for(lambda: self._written >= mine or self.closed, RECORD_GRACE)
                if self._written >= mine or self.closed:
                    return
        self.write_answers()  # on failure they stay buffered and go with the next write that succeeds

    def write_answers(self) -> None:
        """Write the answers not yet on disk now (before a read that should see them); waits for a write that
        carries some of them to commit."""
        with self._recorded:
            if self._written >= self._buffered:
                return
        try:
            with self.store.write():
                pass  # they ride in every write
        except StoreFault as fault:
            log.error("could not record channel answers: %s", fault.reason)

    def _write_answers(self, tx: Transaction) -> None:
        """Rider of every write: the answers channels gave since the last one."""
        with self._recorded:
            taken, self._unrecorded = self._unrecorded, []
            upto = self._buffered
        if not taken:
            return
        answers = []
        for row, outcome, at, offset in taken:  # a jump taken since the answer moves its time with the clock
            at += self.jumps.offset - offset
            answer = answer_for(row, outcome, at, self.policy, _jitter(row, outcome))
            self._record(tx, row, answer, at)
            answers.append((row, answer))
        failed = {row.key for row, answer in answers if answer.result != RESULT_DELIVERED}
        with self._lock:  # at once: rows written later in this same write must queue behind these retries
            newly_blocked = failed - self._blocked
            self._blocked |= failed
        # a pass is needed only for a retry to schedule, or rows of the same key waiting that no worker holds
        local = self.local_ids()
        need_pass = any(answer.result != RESULT_DELIVERED or not tx.pending_of_key(row) <= local
                        for row, answer in answers)

        def written() -> None:
            with self._recorded:
                self._written = max(self._written, upto)
                self._recorded.notify_all()

        def next_of_keys() -> None:
            if tx.committed:
                for row, answer in answers:
                    self._next_of_key(row, answer.result == RESULT_DELIVERED)
                if need_pass:
                    self.wake.set()

        def not_written() -> None:
            with self._recorded:
                self._unrecorded[:0] = taken
            with self._lock:
                self._blocked -= newly_blocked

        tx.after_commit.append(written)
        tx.after_rollback.append(not_written)
        tx.after_unlock.append(next_of_keys)

    def _record(self, tx: Transaction, row: Delivery, answer: Answer, now: float) -> None:
        ok = answer.result == RESULT_DELIVERED
        if answer.result == RESULT_RETRYING:
            tx.retry_later(row, answer.at or now, answer.detail, answer.possible_repeat)
            tx.delivery_line(row, now, False, answer.detail)
            log.warning("%s: %s not delivered to %s: %s", row.event, row.alert.tag, row.channel, answer.detail)
        elif answer.result == RESULT_FAILED:
            self._give_up(tx, row, now, answer.detail)
        elif not tx.finish(row, DELIVERED, answer.detail, now):
            tx.delivery_line(row, now, True, "delivered (already done by another process: a repeat)")
        else:
            tx.delivery_line(row, now, ok, answer.detail)

    def _give_up(self, tx: Transaction, row: Delivery, now: float, detail: str) -> None:
        """A row that will not be delivered: a firing that never arrived takes its reminders and recovery with it,
        and its channel no longer counts as told."""
        tx.finish(row, FAILED, detail, now)
        tx.delivery_line(row, now, False, detail)
        self.untell(tx, row, now, detail)
        log.warning("%s: %s to %s abandoned (%s)", row.event, row.alert.tag, row.channel, detail)

    def untell(self, tx: Transaction, row: Delivery, now: float, why: str) -> bool:
        """A firing row that will not be sent: unless its channel heard of the episode otherwise, it no longer
        counts as told, and the reminders and recovery queued behind go with it. True if it was untold."""
        if row.kind not in ("firing", "escalation") or tx.knows(row):
            return False
        for follower in tx.drop_followers(row, now, f"dropped: the firing it follows was not delivered ({why})"):
            self._on_answer(follower, RESULT_DROPPED, "dropped with its firing")
        self._on_never_told(tx, row, now)
        return True

    def _next_of_key(self, row: Delivery, delivered: bool) -> None:
        """The row's key is free: send the next claimed row of it, or (after a failure) give the rest back so they
        wait behind the retry."""
        with self._lock:
            queue = self._in_flight.get(row.key)
            if queue is None:
                return
            for index, queued in enumerate(queue):
                if queued.id == row.id:
                    del queue[index]
                    self._local.discard(row.id)
                    break
            if delivered and queue:
                nxt, following = queue[0], []
            else:
                nxt, following = None, list(queue)
                del self._in_flight[row.key]
                self._local.difference_update(queued.id for queued in following)
                if not delivered:
                    self._blocked.add(row.key)
        if following:
            self._give_back(following)
        if nxt is not None:
            self._submit(nxt)

    def local_ids(self) -> set[int]:
        """The rows this process holds: sending, or claimed and waiting behind one of their key."""
        with self._lock:
            return set(self._local)

    # ---- start-up, summaries, claims -----------------------------------------------------------------------

    def recover(self, alive: Callable[[str], bool] | None = None) -> int:
        """After a crash: rows a dead process was sending are counted as interrupted and sent again, marked as
        possible repeats; returns how many."""
        now = self.clock.time()
        alive = alive or owner_alive
        with self.store.write() as tx:
            rows = [row for row, owner in tx.in_flight() if owner != self.owner and not alive(owner)]
            for row in rows:
                tx.mark_interrupted(row)
                tx.delivery_line(row, now, None, f"attempt {row.attempts + 1} interrupted: tray-alerts stopped while"
                                                  " sending; it may have arrived, so the next one is marked as a"
                                                  " possible repeat")
        if rows:
            log.warning("%d notification(s) were being sent when tray-alerts stopped; sending them again, marked as"
                        " possible repeats", len(rows))
        return len(rows)

    def _add_summaries(self, tx: Transaction, summaries: dict[str, Alert], now: float) -> None:
        for channel, summary in summaries.items():
            row = Delivery(0, channel, summary.event, "", SUMMARY_KIND, summary, not_before=now,
                           expires_at=now + self.policy.expiry, created_at=now)
            tx.history(now, summary.event, "summary", summary.level, summary.message, channel, None,
                       f"to {channel}: {summary.message}")
            tx.insert(row)

    def flush_summaries(self) -> int:
        """Queue every summary still waiting (on shutdown); returns how many."""
        now = self.clock.time()
        summaries = self.storm.take_summaries(now, all_pending=True)
        if summaries:
            with self.store.write() as tx:
                self._add_summaries(tx, summaries, now)
        return len(summaries)

    def _groups(self, channel: str) -> bool:
        return hasattr(self.dispatcher.channels.get(channel), "send_many")

    def _renew(self, tx: Transaction, now: float) -> None:
        ids = self.local_ids()
        if ids:
            tx.renew(ids, self.owner, now + self.lease_seconds)
        self._renewed_at = now

    def close(self) -> None:
        """Write the answers still buffered; this outbox's claims are no longer kept alive: another engine may
        recover them."""
        self.write_answers()
        self.closed = True
        with self._recorded:
            self._recorded.notify_all()
        _LIVE_OWNERS.discard(self.owner)


_LIVE_OWNERS: set[str] = set()  # owners of this process's open outboxes


def _jitter(row: Delivery, outcome: Outcome) -> random.Random | None:
    """The retry jitter of one failed attempt of a row: the same however often its answer is worked out (None
    for an answer that schedules no retry)."""
    return random.Random(f"{row.id}:{row.attempts}") if not outcome.ok and outcome.retryable else None


def owner_id() -> str:
    """Who holds a claim: this process, told apart from an earlier one with the same pid."""
    owner = f"{os.getpid()}:{secrets.token_hex(4)}"
    _LIVE_OWNERS.add(owner)
    return owner


def owner_alive(owner: str) -> bool:
    """Whether the process (or, in this process, the open outbox) that holds a claim still runs."""
    pid_text = owner.partition(":")[0]
    if not pid_text.isdigit():
        return False
    if int(pid_text) == os.getpid():
        return owner in _LIVE_OWNERS
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
