"""Candidates proposed ahead of a person's pick.

Why: on the embedded tier the LMM takes about 2.5 s of a turn on 2 CPU cores, and all it needs is the history,
which is known for every column as soon as a slate is shown. So while the person looks at the slate, the
proposals for each column's next history are computed on the torch thread's background lane (`pasta.torch_thread`:
only while nothing interactive runs), the likeliest pick first. Where the generator has `propose_many` (the LMM),
the likeliest history goes alone and the others in one batch after it: a batch decodes faster per history (4 in
about 6 s instead of 10 s one by one on a fast 2-core machine), but on a slow one a batch of 4 took 17 s, longer
than a person looks (a pick stops background work, so it was always lost), while the likeliest history alone took
7.7 s. The pick then only selects and renders. Proposals for columns not picked cost idle CPU, never time anyone
waits for.

Candidates from the LMM are sampled, so a proposal made ahead of time is as good a draw as one made after the
pick; the safety filter still runs on them when they are used.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future

from pasta import torch_thread
from pasta.contracts import Candidate

Key = tuple[tuple[str, ...], int]


class PrefetchingGenerator:
    """A `CandidateGenerator` that answers from proposals made ahead of time, and makes them on request."""

    def __init__(self, generator, capacity: int = 128) -> None:
        """`capacity`: proposals kept (the oldest are dropped; 4 per live session are enough)."""
        self.generator = generator
        self.capacity = capacity
        self.hits = self.misses = 0
        self._ahead: OrderedDict[Key, Future] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.generator.name

    def __getattr__(self, attribute: str):  # last_stats, fallback, ... of the wrapped generator
        if attribute == "generator":  # not set yet (e.g. during unpickling): no recursion
            raise AttributeError(attribute)
        return getattr(self.generator, attribute)

    def propose(self, history: list[str], n: int = 25) -> list[Candidate]:
        with self._lock:
            future = self._ahead.pop((tuple(history), n), None)
        if future is not None:
            if future.running() and not torch_thread.on_this_thread():
                future.exception()  # already being computed elsewhere: waiting is sooner than starting over
            if future.done() and not future.cancelled() and future.exception() is None:
                self.hits += 1
                return future.result()
            future.cancel()
        self.misses += 1
        return self.generator.propose(history, n)

    def prefetch(self, histories: Sequence[Sequence[str]], n: int = 25) -> None:
        """Queue proposals for these histories (likeliest first), unless already queued."""
        with self._lock:
            new = [list(h) for h in dict.fromkeys(tuple(h) for h in histories) if (h, n) not in self._ahead]
            if len(new) > 1 and hasattr(self.generator, "propose_many"):
                futures: list[Future] = [Future() for _ in new]
                self._ahead.update(((tuple(h), n), f) for h, f in zip(new, futures))
                torch_thread.background(self._propose_many_ahead, new[:1], n, futures[:1])  # the likeliest, alone
                torch_thread.background(self._propose_many_ahead, new[1:], n, futures[1:])
            else:
                for history in new:
                    self._ahead[(tuple(history), n)] = torch_thread.background(self._propose_ahead, history, n)
            while len(self._ahead) > self.capacity:
                self._ahead.popitem(last=False)[1].cancel()

    def _propose_ahead(self, history: list[str], n: int) -> list[Candidate]:
        candidates = self.generator.propose(history, n)
        if torch_thread.preempted():  # a generator that did not stop may still have cut corners: do not keep it
            raise torch_thread.Preempted("proposal gave way to interactive work")
        return candidates

    def _propose_many_ahead(self, histories: list[list[str]], n: int, futures: list[Future]) -> None:
        """One batched proposal for the histories whose futures are still wanted (not cancelled by now)."""
        live = [(h, f) for h, f in zip(histories, futures) if f.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = self.generator.propose_many([h for h, _ in live], n)
            if torch_thread.preempted():
                raise torch_thread.Preempted("proposal gave way to interactive work")
        except Exception as error:  # noqa: BLE001 - each waiting propose() sees it and proposes afresh
            for _, future in live:
                future.set_exception(error)
            return
        for (_, future), result in zip(live, results):
            future.set_result(result)

    def forget(self, histories: Sequence[Sequence[str]], n: int = 25) -> None:
        """Drop (and cancel, if not started) proposals that will not be asked for."""
        with self._lock:
            for history in histories:
                future = self._ahead.pop((tuple(history), n), None)
                if future is not None:
                    future.cancel()
