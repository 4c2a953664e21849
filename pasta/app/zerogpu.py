"""Hugging Face ZeroGPU support: a GPU is attached only while a function decorated with `spaces.GPU` runs.

`on_gpu(fn)` is `spaces.GPU(fn)` where the `spaces` package is installed (as on Spaces) and `fn` itself
everywhere else, so the app imports and runs the same on a laptop, a GPU server and a ZeroGPU Space. Only
rendering is wrapped: it is the one step that needs the GPU, and holding it briefly keeps the Space's queue moving.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable)

RENDER_SECONDS = 60
"""Longest a render call may hold the ZeroGPU device (spaces.GPU's duration)."""


def spaces_available() -> bool:
    return importlib.util.find_spec("spaces") is not None


def on_gpu(fn: F, duration: int = RENDER_SECONDS) -> F:
    """`spaces.GPU(duration=duration)(fn)` when the `spaces` package is present, else `fn` unchanged."""
    if not spaces_available():
        return fn
    import spaces

    log.info("ZeroGPU: %s runs under spaces.GPU(duration=%d)", getattr(fn, "__name__", fn), duration)
    return spaces.GPU(duration=duration)(fn)
