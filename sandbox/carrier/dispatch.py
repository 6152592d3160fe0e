"""The calls-per-second limit: calls wait in a queue for their slot, then each starts on its own thread."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from sandbox.carrier.model import Call


class Dispatcher:
    """Starts queued calls when the CPS limit lets them go (`cps` None or 0: at once)."""

    def __init__(self, cps: float | None, run: Callable[[Call], None], log: Callable[[Call, str], None]) -> None:
        self._cps = cps
        self._run = run
        self._log = log
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._next_slot = 0.0
        self._queue: list[tuple[float, int, Call]] = []
        self._order = itertools.count()
        self._threads: dict[str, threading.Thread] = {}
        self._live: dict[str, Call] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._dispatch, name="carrier-dispatcher", daemon=True)
        self._thread.start()

    def next_slot(self, now: float) -> float:
        """The monotonic time the CPS limit lets a call created `now` start; reserves it."""
        with self._lock:
            if not self._cps:
                return now
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self._cps
            return slot

    def enqueue(self, call: Call) -> None:
        """Start `call` at its CPS slot."""
        with self._lock:
            heapq.heappush(self._queue, (call.slot, next(self._order), call))
            self._cond.notify()

    def cancel_queued(self, call: Call) -> bool:
        """Cancel a call still waiting for its CPS slot: it ends `canceled` and sends no callbacks."""
        with self._lock:
            if call.sid in self._live or call.ended:
                return False
            self._end_unstarted(call)
        self._ended_unstarted(call, "canceled while queued")
        return True

    def stop(self) -> list[Call]:
        """Start nothing more: a call still waiting for its CPS slot (or not yet taken from the queue) ends
        `canceled` with no callbacks, like a queued call canceled by the API. Returns the live calls (for the
        caller to wake), after which `join` waits."""
        with self._lock:
            self._stopping = True
            self._cond.notify_all()
            unstarted = [call for _, _, call in self._queue if not call.ended and call.sid not in self._live]
            self._queue.clear()
            for call in unstarted:
                self._end_unstarted(call)
            live = list(self._live.values())
        for call in unstarted:
            self._ended_unstarted(call, "canceled: the carrier stopped before it started")
        return live

    @staticmethod
    def _end_unstarted(call: Call) -> None:
        """Mark a call that never started as ended `canceled` (under the dispatcher's lock)."""
        call.status = "canceled"
        call.end_time = time.time()
        call.duration = 0
        call.ended = True

    def _ended_unstarted(self, call: Call, why: str) -> None:
        self._log(call, why)
        with call.cond:
            call.cond.notify_all()

    def join(self, timeout: float = 30) -> None:
        """Wait for the dispatcher and every call thread to end."""
        self._thread.join()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout=timeout)

    def _dispatch(self) -> None:
        with self._lock:
            while not self._stopping:
                if not self._queue or self._queue[0][0] > time.monotonic():
                    self._cond.wait(self._queue[0][0] - time.monotonic() if self._queue else None)
                    continue
                _, _, call = heapq.heappop(self._queue)
                if call.ended:  # canceled while queued
                    continue
                call.queue_time_ms = round((time.monotonic() - call.arrived) * 1000)
                thread = threading.Thread(target=self._call_thread, args=(call,), name=f"carrier-{call.sid[:8]}")
                thread.daemon = True
                self._threads[call.sid] = thread
                self._live[call.sid] = call
                thread.start()

    def _call_thread(self, call: Call) -> None:
        try:
            self._run(call)
        finally:
            with self._lock:
                self._live.pop(call.sid, None)
                self._threads.pop(call.sid, None)
            with call.cond:
                call.ended = True
                call.cond.notify_all()
