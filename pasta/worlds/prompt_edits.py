"""Text operations that edit a prompt along a world's attributes: swap a phrase the prompt names for another, drop
phrases of one kind, append a phrase. The worlds' candidate edits (`World.edits`) are built from these."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def extend(prompt: str, phrase: str) -> str:
    """An expansion that adds a phrase to the prompt, unless the phrase already contains the prompt."""
    if words(prompt) <= words(phrase):
        return phrase
    return f"{prompt.rstrip(' ,.')}, {phrase}"


def alternation(phrases: Iterable[str]) -> re.Pattern:
    """A regex matching any of `phrases` as whole words, longest first, ignoring case."""
    ordered = sorted(set(phrases), key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(p) for p in ordered) + r")\b", re.IGNORECASE)


def tidy(text: str) -> str:
    """Whitespace, stray commas and a/an after an edit."""
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.])", r"\1", text)
    text = re.sub(r",\s*,+", ",", text)
    text = re.sub(r"\b([Aa]) ([aeiou])", r"\1n \2", text)
    text = re.sub(r"\b([Aa])n ([bcdfgjklmnpqrstvwxyz])", r"\1 \2", text, flags=re.IGNORECASE)
    return text.strip(" ,")


def replace_first(regex: re.Pattern, prompt: str, new: str) -> str:
    return tidy(regex.sub(new, prompt, count=1))


def without(regex: re.Pattern, prompt: str) -> str:
    return tidy(regex.sub("", prompt))


def pick(rng: np.random.Generator, values: Iterable, m: int | None = None) -> list:
    """m of `values` (all where m is None) in a random order drawn from `rng`."""
    values = list(values)
    return [values[i] for i in rng.permutation(len(values))[:m]]
