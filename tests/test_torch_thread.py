"""The torch thread: every call runs on one thread, in the caller's context; background work waits its turn."""

import contextvars
import inspect
import threading
import time

import pytest

from pasta import torch_thread

where = contextvars.ContextVar("where", default="unset")


def test_calls_run_on_one_thread_in_the_callers_context_and_raise_there():
    where.set("caller")
    names = {torch_thread.call(lambda: threading.current_thread().name) for _ in range(3)}
    assert names == {"pasta-torch"}
    assert torch_thread.call(where.get) == "caller"

    def fail():
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        torch_thread.call(fail)
    assert torch_thread.call(lambda: torch_thread.call(lambda: 7)) == 7  # nested: no deadlock


def test_background_work_waits_for_interactive_work_and_can_be_cancelled():
    order = []
    later = torch_thread.background(order.append, "background")
    cancelled = torch_thread.background(order.append, "cancelled")
    assert cancelled.cancel()
    for k in range(3):  # interactive calls a few ms apart keep the background lane waiting
        torch_thread.call(order.append, f"call {k}")
        time.sleep(0.02)
    later.result(timeout=10)
    assert order == ["call 0", "call 1", "call 2", "background"]


def test_decorated_functions_keep_their_signature_and_generators_stream_from_the_torch_thread():
    @torch_thread.on_torch_thread
    def steps(n, progress=None):
        for _ in range(n):
            yield threading.current_thread().name

    @torch_thread.on_torch_thread
    def plain(x, *, scale=2):
        return x * scale, threading.current_thread().name

    assert inspect.isgeneratorfunction(steps) and not inspect.isgeneratorfunction(plain)
    assert list(inspect.signature(steps).parameters) == ["n", "progress"]
    assert list(steps(3)) == ["pasta-torch"] * 3
    assert plain(4, scale=3) == (12, "pasta-torch")
