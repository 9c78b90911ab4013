"""Fan-out: every channel has its own worker thread, so a slow or failing one never holds up the rest."""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from .channels.base import Channel, DeliveryError
from .model import Alert
from .redact import redact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How one delivery went; `detail` is safe to log (secrets masked)."""

    ok: bool
    detail: str = ""
    retryable: bool = False
    retry_after: float | None = None
    may_have_arrived: bool = False  # it failed after the request was sent: the peer may have it




def attempt(channel: Channel, alert: Alert | list[Alert], recipient: str = "") -> Outcome:
    """Call channel.send once (send_many for a list, send_to for one recipient) and turn whatever happens into
    an Outcome."""
    try:
        if isinstance(alert, list):
            result = channel.send_many(alert)  # type: ignore[attr-defined]
        elif recipient:
            result = channel.send_to(alert, recipient)  # type: ignore[attr-defined]
        else:
            result = channel.send(alert)
    except DeliveryError as error:
        return Outcome(False, redact(error.message), error.retryable, error.retry_after, error.may_have_arrived)
    except Exception as error:  # a channel bug must not take the engine down
        log.debug("channel %s raised", getattr(channel, "name", "?"), exc_info=True)
        return Outcome(False, redact(f"{type(error).__name__}: {error}"), retryable=True)
    if result is False:
        return Outcome(False, "the channel reported failure", retryable=True)
    return Outcome(True)


class ChannelWorker:
    """A daemon thread that sends one channel's alerts in order."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"channel-{channel.name}", daemon=True)
        self._thread.start()

    def submit(self, alert: Alert | list[Alert], recipient: str = "",
               on_done: Callable[[Outcome], None] | None = None) -> Future:
        """Queue an alert (or a list, for send_many); the future's result is its Outcome. `on_done` is called
        with it in this worker's thread, before the worker takes its next alert."""
        future: Future = Future()
        self._queue.put((future, alert, recipient, on_done))
        return future

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        self._queue.put(None)

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end; False if it is still busy (a hung send)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            future, alert, recipient, on_done = item
            if future.set_running_or_notify_cancel():
                outcome = attempt(self.channel, alert, recipient)
                future.set_result(outcome)
                if on_done is not None:
                    try:
                        on_done(outcome)
                    except Exception:
                        log.exception("recording an answer of %s failed", getattr(self.channel, "name", "?"))


class Dispatcher:
    """Sends one alert to many channels side by side and waits at most `timeout` seconds for them."""

    def __init__(self, channels: Mapping[str, Channel], timeout: float):
        self.channels = channels
        self.timeout = timeout
        self._workers: dict[str, ChannelWorker] = {}
        self._lock = threading.Lock()

    def _worker(self, name: str) -> ChannelWorker:
        with self._lock:
            worker = self._workers.get(name)
            if worker is None:
                worker = self._workers[name] = ChannelWorker(self.channels[name])
            return worker

    def submit(self, name: str, alert: Alert | list[Alert], recipient: str = "",
               on_done: Callable[[Outcome], None] | None = None) -> Future:
        """Queue one alert (or a list, for send_many) for one channel without waiting."""
        return self._worker(name).submit(alert, recipient, on_done)

    def deliver(self, alert: Alert, names: Iterable[str]) -> dict[str, Outcome]:
        """Send straight to every named channel, not through the outbox (a test alert; the log and pop-ups while
        the state file cannot be written); one still sending at the deadline counts as not delivered."""
        futures = {name: self.submit(name, alert) for name in names}
        if not futures:
            return {}
        wait(futures.values(), timeout=self.timeout)
        outcomes: dict[str, Outcome] = {}
        for name, future in futures.items():
            if future.done():
                outcomes[name] = future.result()
            elif future.cancel():
                outcomes[name] = Outcome(False, f"not sent: the channel was still busy after {self.timeout:g} s",
                                         retryable=True)
            else:
                outcomes[name] = Outcome(False, f"no answer within {self.timeout:g} s", retryable=True)
        return outcomes

    def close(self, wait_seconds: float = 0.5) -> set[str]:
        """Stop the worker threads once their queues are empty, waiting up to `wait_seconds` in all;
        returns the channels still busy (a hung send keeps running in its daemon thread)."""
        with self._lock:
            workers, self._workers = dict(self._workers), {}
        for worker in workers.values():
            worker.stop()
        deadline = time.monotonic() + wait_seconds
        return {name for name, worker in workers.items()
                if not worker.join(max(0.0, deadline - time.monotonic()))}
