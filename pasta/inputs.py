"""What a person types, checked before the agent uses it: a prompt (text, not empty, bounded, some words; terminal
escapes and control characters dropped) and a rating (1-5). Errors say what is wrong and what would work."""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from pasta.candidates.clean import MAX_INPUT_CHARS


class InputError(ValueError):
    """The person's input cannot be used; the message says why and what would work."""


class RefusedError(InputError):
    """The safety filter refused the prompt; the message is polite and suggests what to do instead. `refusals`:
    (text, reason) of each refused candidate, when candidates were what it refused."""

    def __init__(self, message: str, refusals: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.refusals = refusals or []


_CONTROL = {"Cc", "Cf", "Cs", "Co"}
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves ("\x1b[31m")
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, hyperlinks
    r"|\x1b[@-Z\\-_]"
)  # any other two-character escape
_KEEP_FORMAT = {"\u200d", "\ufe0f", "\ufe0e"}  # joiners and variation selectors inside emoji


def check_prompt(prompt: object) -> str:
    """The prompt as the agent uses it, or an InputError saying what is wrong: text, not empty, at most
    MAX_INPUT_CHARS characters, some letters or digits; terminal escape sequences and control characters are
    dropped, whitespace collapsed."""
    if not isinstance(prompt, str):
        raise InputError(f"the prompt must be text, not {type(prompt).__name__}")
    prompt = _ESCAPE_SEQUENCE.sub(" ", unicodedata.normalize("NFC", prompt))
    prompt = "".join(
        ch if ch.isspace() or unicodedata.category(ch) not in _CONTROL or ch in _KEEP_FORMAT else " " for ch in prompt
    )
    prompt = " ".join(prompt.split())
    if not prompt:
        raise InputError("the prompt is empty: describe what you would like to see, e.g. 'a red dress'")
    if len(prompt) > MAX_INPUT_CHARS:
        raise InputError(f"the prompt has {len(prompt)} characters; keep it under {MAX_INPUT_CHARS}")
    if not any(ch.isalnum() for ch in prompt):
        raise InputError("the prompt has no words: add a few words to the symbols or emoji, e.g. 'a 🐱 t-shirt'")
    return prompt


def check_rating(rating: object) -> int | None:
    if rating is None:
        return None
    if isinstance(rating, bool) or not isinstance(rating, (int, np.integer)) or rating not in (1, 2, 3, 4, 5):
        raise InputError("a rating must be 1, 2, 3, 4 or 5")
    return int(rating)
