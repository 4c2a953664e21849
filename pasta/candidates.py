"""Candidate prompt expansions: the cleaning every generator shares.

A generator proposes raw phrases per category; `assemble` turns them into exactly n `Candidate`s: it repairs
(strips numbering, quotes and chatter), drops instruction-like text (model output is data, never commands),
dedupes, drops near-copies of the current prompt, and tops up each category from a fallback generator so that
a weak or broken model never reaches the user as an error or a short slate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from pasta.contracts import CATEGORIES, Candidate

MAX_INPUT_CHARS = 500
"""Longest prompt a person may type."""
MAX_CANDIDATE_CHARS = MAX_INPUT_CHARS + 120
"""Longest expansion kept: the prompt plus a phrase; expansions add phrases, not essays."""

_LEADING_JUNK = re.compile(r"^\s*(?:[-*•>]+|\(?\d+[.):]|[a-e][.)])\s*")
_INSTRUCTION_LIKE = re.compile(
    r"(ignore (?:all|any|the|previous)|disregard|system prompt|instruction|as an ai|language model|"
    r"assistant|http[s]?://|www\.|<\s*/?\s*\w+\s*>|```|\{|\}|prompt:|sure[,!]|here (?:are|is))",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9]+")


def clean_phrase(raw: str, prompt: str = "") -> str | None:
    """One phrase from model output, repaired; None when nothing usable is left. Only what the model added
    to `prompt` is judged for instruction-like text: the person's own words are not the model's."""
    text = _LEADING_JUNK.sub("", raw.strip())
    text = text.strip().strip("\"'`“”‘’").strip()
    text = re.sub(r"\s+", " ", text).strip(" ,.;:-")
    added = text.lower().replace(prompt.lower(), " ") if prompt else text
    if not text or len(text) > MAX_CANDIDATE_CHARS or _INSTRUCTION_LIKE.search(added):
        return None
    if not re.search(r"[A-Za-z]", text):
        return None
    return text


def split_phrases(raw: str) -> list[str]:
    """Split a model's reply into phrases on ' | ', newlines or semicolons (commas stay inside a phrase)."""
    parts = re.split(r"\s*\|\s*|\n+|;\s*", raw)
    return [p for p in (clean_phrase(part) for part in parts) if p]


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def is_near_copy(a: str, b: str, threshold: float = 0.9) -> bool:
    """Token-set Jaccard: cheap enough for every candidate, and catches reorderings and case changes."""
    wa, wb = words(a), words(b)
    if not wa or not wb:
        return wa == wb
    return len(wa & wb) / len(wa | wb) >= threshold


def extend(prompt: str, phrase: str) -> str:
    """An expansion that adds a phrase to the prompt, unless the phrase already contains the prompt."""
    if words(prompt) <= words(phrase):
        return phrase
    return f"{prompt.rstrip(' ,.')}, {phrase}"


def assemble(
    prompt: str,
    proposals: dict[str, Iterable[str]],
    n: int,
    fallback: Callable[[str, int], list[str]] | None = None,
    source: str = "",
    fallback_source: str = "retrieval",
) -> list[Candidate]:
    """Exactly n candidates (n // 5 per category, remainder to the first categories), in category order.

    `proposals` maps category -> full candidate prompts (already combined with the prompt);
    `fallback(category, k)` returns at least k more full prompts for a category.
    """
    if n < len(CATEGORIES):
        raise ValueError(f"n={n} is too small: at least one candidate per category ({len(CATEGORIES)}) is needed")
    quota = {c: n // len(CATEGORIES) + (i < n % len(CATEGORIES)) for i, c in enumerate(CATEGORIES)}
    seen: list[str] = [prompt]
    out: list[Candidate] = []

    def accept(text: str | None, threshold: float = 0.9) -> bool:
        if text is None or any(is_near_copy(text, s, threshold) for s in seen):
            return False
        seen.append(text)
        return True

    for category in CATEGORIES:
        chosen = []
        for text in proposals.get(category, ()):
            text = clean_phrase(text, prompt)
            if len(chosen) < quota[category] and accept(text):
                chosen.append(Candidate(text, category, source))
        attempts = 0
        while fallback is not None and len(chosen) < quota[category] and attempts < 3:
            attempts += 1
            for text in fallback(category, 3 * quota[category] * attempts):
                text = clean_phrase(text, prompt)
                if len(chosen) < quota[category] and accept(text):
                    chosen.append(Candidate(text, category, fallback_source))
        if fallback is not None and len(chosen) < quota[category]:
            # Last resort, e.g. rephrasings of a long prompt, which all look alike: any text whose words differ from
            # the prompt's and from every other candidate's is accepted (a generator must not fail a turn).
            for text in fallback(category, 3 * quota[category] * (attempts + 1)):
                text = clean_phrase(text, prompt)
                if len(chosen) < quota[category] and accept(text, threshold=1.0):
                    chosen.append(Candidate(text, category, fallback_source))
        if len(chosen) < quota[category]:
            raise RuntimeError(f"could not find {quota[category]} distinct {category!r} candidates for {prompt!r}")
        out.extend(chosen)
    return out
