"""One thread for all of the app's torch work, with a low-priority lane for work done ahead of time.

Why one thread: PyTorch's CPU build parallelises ops with OpenMP (libgomp), which keeps a pool of worker threads
per calling thread. Once a second thread of the process has run parallel regions, libgomp counts more threads
than cores and stops spin-waiting between regions, so every op pays a sleep and a wake-up, in every thread, for
good. Gradio runs handlers on a pool of worker threads; measured on 2 cores, a turn's 16 images then rendered 1.6x
slower than in the main thread (element-wise ops 10x slower). So the app loads its models and runs every handler
that touches them on this one thread. Handlers are short steps (a turn advances two columns at a time), so
sessions still interleave.

Why two lanes: `background` work (candidates proposed ahead of a person's pick, `pasta.candidates.prefetch`) must never
delay what someone is waiting for. It runs only when no `call` is queued and none has finished in the last
`IDLE_S` seconds (a turn's steps come a few milliseconds apart, a person needs longer than that to look at a
slate). A `call` that arrives while background work runs asks it to stop: long loops (LMM decoding) check
`preempted()` between steps and give up (`Preempted`).

Context variables travel with each call: Gradio's progress bars and `gr.Info` find their event through them.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")

IDLE_S = 1.0
"""Background work waits until the interactive lane has been quiet this long."""


class Preempted(RuntimeError):
    """Background work gave way to interactive work; its result is incomplete."""


_NOW, _LATER = 0, 1


class _Worker:
    """A daemon thread serving a priority queue of (lane, order, job); interactive jobs go first."""

    def __init__(self) -> None:
        self.jobs: queue.PriorityQueue = queue.PriorityQueue()
        self.order = itertools.count()
        self.last_interactive = 0.0
        self.arrived = threading.Event()
        self.lane: int | None = None  # of the job running now
        self.preempt = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="pasta-torch", daemon=True)
        self.thread.start()

    def submit(self, lane: int, fn: Callable, args, kwargs) -> Future:
        future: Future = Future()
        self.jobs.put((lane, next(self.order), future, contextvars.copy_context(), fn, args, kwargs))
        self.arrived.set()
        if lane == _NOW and self.lane == _LATER:
            self.preempt.set()
        return future

    def _serve(self) -> None:
        while True:
            lane, order, future, context, fn, args, kwargs = item = self.jobs.get()
            if lane == _LATER:
                quiet_for = time.monotonic() - self.last_interactive
                if quiet_for < IDLE_S or not self.jobs.empty() and self.jobs.queue[0][0] == _NOW:
                    self.arrived.clear()
                    self.jobs.put(item)  # not yet: something interactive is going on; wait out the quiet
                    self.arrived.wait(max(0.01, IDLE_S - quiet_for))  # period, waking at once for a new job
                    continue
            if not future.set_running_or_notify_cancel():
                continue
            self.preempt.clear()
            self.lane = lane
            if lane == _LATER and self.jobs.queue and self.jobs.queue[0][0] == _NOW:  # arrived just now
                self.preempt.set()
            try:
                future.set_result(context.run(fn, *args, **kwargs))
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                future.set_exception(error)
            finally:
                self.lane = None
                if lane == _NOW:
                    self.last_interactive = time.monotonic()


_worker = _Worker()
_DONE = object()


def on_this_thread() -> bool:
    return threading.current_thread() is _worker.thread


def preempted() -> bool:
    """True inside background work that an interactive call is waiting for: stop and raise `Preempted`."""
    return on_this_thread() and _worker.lane == _LATER and _worker.preempt.is_set()


def call(fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn(*args, **kwargs)` on the torch thread, ahead of background work, in a copy of the caller's context;
    exceptions come back to the caller."""
    if on_this_thread():  # a nested call would wait on itself
        return fn(*args, **kwargs)
    return _worker.submit(_NOW, fn, args, kwargs).result()


def background(fn: Callable[..., T], *args, **kwargs) -> Future:
    """Queue `fn` on the torch thread's low-priority lane; cancel the returned future if it is no longer wanted."""
    return _worker.submit(_LATER, fn, args, kwargs)


def iterate(items: Iterator[T]) -> Iterator[T]:
    """Advance an iterator on the torch thread, one item at a time, yielding the items on the caller's thread."""
    while (item := call(next, items, _DONE)) is not _DONE:
        yield item


def on_torch_thread(fn: Callable) -> Callable:
    """Decorator: run `fn` (each step of it, for a generator function) on the torch thread. The signature is kept
    (`functools.wraps`), so Gradio still sees `gr.Progress` parameters and streams generators."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def steps(*args, **kwargs):
            yield from iterate(fn(*args, **kwargs))

        return steps

    @functools.wraps(fn)
    def run(*args, **kwargs):
        return call(fn, *args, **kwargs)

    return run
