"""What the project prints where people read it: no library chatter, progress bars only where someone watches a
terminal, and one clear line for an error that stops the program.

- `quiet_libraries()` turns off the model libraries' progress bars and advisory logging (transformers' "Loading
  weights" bar, huggingface_hub's download bars, diffusers' pipeline bars). `pasta` calls it on import.
- `progress_bar(...)` is the project's own tqdm bar: drawn on a terminal (or with `--progress` / PASTA_PROGRESS=1);
  written to a file or a pipe it becomes one line when a stage starts and one when it ends, instead of hundreds.
- `report(error)` prints `pasta: error: ...` and returns the exit status; the traceback only with PASTA_DEBUG=1
  (`--debug`).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
import traceback

from tqdm import tqdm

_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def quiet_libraries() -> None:
    """Library progress bars and info logging off, unless the person asked for them (PASTA_DEBUG=1)."""
    if debug():
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read by transformers and diffusers on import
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for module, calls in (
        ("transformers.utils.logging", ("disable_progress_bar", "set_verbosity_error")),
        ("diffusers.utils.logging", ("disable_progress_bar", "set_verbosity_error")),
        ("huggingface_hub.utils", ("disable_progress_bars",)),
    ):
        if module in sys.modules:  # imported before us: switch it off directly
            for name in calls:
                getattr(sys.modules[module], name)()


def debug() -> bool:
    return os.environ.get("PASTA_DEBUG", "").strip().lower() in _ON


def bars_enabled() -> bool:
    """PASTA_PROGRESS=1 or 0 decides; otherwise bars only when stderr is a terminal."""
    setting = os.environ.get("PASTA_PROGRESS", "").strip().lower()
    if setting in _ON:
        return True
    if setting in _OFF:
        return False
    return sys.stderr.isatty()


class progress_bar(tqdm):
    """tqdm where a person watches a terminal; elsewhere a line when the stage starts and one when it ends."""

    def __init__(self, *args, desc: str | None = None, disable: bool = False, **kwargs) -> None:
        self._stage = None if disable or bars_enabled() else (desc or "working")
        self._started = time.monotonic()
        super().__init__(*args, desc=desc, disable=disable or self._stage is not None, **kwargs)
        if self._stage is not None:
            total = f" ({self.total:g} steps)" if self.total else ""
            print(f"{self._stage}: started{total}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if getattr(self, "_stage", None) is not None:
            print(f"{self._stage}: done in {time.monotonic() - self._started:.1f} s", file=sys.stderr, flush=True)
            self._stage = None
        super().close()


@contextlib.contextmanager
def silenced_stderr():
    """Hide what a library writes to stderr while it loads (bars it draws with no way to turn them off, e.g.
    transformers' GGUF de-quantizing bar); kept, and shown, with PASTA_DEBUG=1."""
    if debug():
        yield
        return
    with contextlib.redirect_stderr(io.StringIO()):
        yield


EXPECTED = (OSError, ValueError, RuntimeError, KeyError, ImportError)
"""Errors whose message is the whole story (a bad path or setting, a foreign log store, missing weights)."""


def report(error: BaseException, program: str = "pasta", code: int = 2) -> int:
    """Print one line naming what went wrong and return `code` to exit with; the traceback only with
    PASTA_DEBUG=1."""
    if debug():
        traceback.print_exception(error)
    message = str(error).strip() or type(error).__name__
    if not isinstance(error, EXPECTED):  # a bug rather than a bad input: say what kind, and how to see more
        message = f"{type(error).__name__}: {message}" + ("" if debug() else " (PASTA_DEBUG=1 shows the traceback)")
    print(f"{program}: error: {message}", file=sys.stderr, flush=True)
    return code
