"""Candidate prompt expansions: the cleaning every generator shares.

A generator proposes raw phrases per category; `assemble` turns them into exactly n `Candidate`s: it repairs
(strips numbering, quotes and chatter), drops instruction-like text (model output is data, never commands; the
person's own words are never judged as if a model wrote them), makes each a whole phrase (`whole_phrase`: no
dangling "of a", no repeated modifiers, a bounded number of parts however many turns added to it), dedupes, drops
near-copies of the current prompt, and tops up each category from a fallback generator and then from neutral
phrases, so that neither a weak model nor an unusual prompt ever reaches the person as an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

from pasta.contracts import CATEGORIES, Candidate
from pasta.worlds.prompt_edits import extend, words  # shared with the worlds' candidate edits

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
_DANGLING = frozenset(
    "a an the of in on at with and or but to for by from into onto over under as like its their his her my your "
    "this that these those".split()
)
"""Words a phrase cannot end with: a candidate ending in one was cut off ("a painting of a", "a slipper in")."""
MAX_PARTS = 6
"""Comma-separated parts a candidate keeps: its subject and the 5 most recent modifiers. Expansions add a part a
turn; without a bound they pile up ("a blue coat, navy blue, bold navy blue, gold red")."""
NEUTRAL_PHRASES = {
    "rephrase": (
        "a picture of {p}",
        "{p}, shown clearly",
        "an illustration of {p}",
        "{p}, as an image",
        "a simple view of {p}",
        "{p}, in focus",
    ),
    "detail": (
        "close-up",
        "seen from the front",
        "with fine detail",
        "small and centred",
        "large in the frame",
        "with soft shadows",
    ),
    "style": (
        "as a flat illustration",
        "as a pencil sketch",
        "as a watercolour",
        "in bold outlines",
        "in muted colours",
        "as a poster",
    ),
    "subject": (
        "with a second one beside it",
        "a pair of them",
        "a smaller version of it",
        "a simpler one",
        "a bolder one",
        "a brighter one",
    ),
    "creative": (
        "on a plain background",
        "in soft morning light",
        "at night",
        "on a bright day",
        "in a quiet scene",
        "in a playful mood",
    ),
}
"""The last top-up of a category, when neither the generator nor its fallback has enough distinct candidates
(e.g. for a prompt whose words no edit recognises): world-neutral, always whole phrases."""

log = logging.getLogger(__name__)


def clean_phrase(raw: str, prompt: str = "") -> str | None:
    """One phrase from model output, repaired; None when nothing usable is left. Instruction-like text is judged
    only where it is not the person's: a match that also occurs in `prompt` (a URL, markup, braces, words such as
    "assistant" that the person typed) is theirs, and kept."""
    text = _LEADING_JUNK.sub("", raw.strip())
    text = text.strip().strip("\"'`“”‘’").strip()
    text = re.sub(r"\s+", " ", text).strip(" ,.;:-")
    if not text or len(text) > MAX_CANDIDATE_CHARS or not re.search(r"[^\W\d_]", text):
        return None
    theirs = prompt.lower()
    if any(m.group(0).lower() not in theirs for m in _INSTRUCTION_LIKE.finditer(text)):
        return None
    return text


def whole_phrase(text: str | None, prompt: str = "") -> str | None:
    """`text` as whole comma-separated parts: each stripped of dangling words at its end, a part dropped when an
    earlier one already says it, an earlier modifier dropped when a later part refines it ("navy blue" then "bold
    navy blue"), and at most MAX_PARTS parts (the first, then the latest). A part that is one of `prompt`'s parts
    is the person's and is not cut. None when nothing is left."""
    if text is None:
        return None
    theirs = {" ".join(p.split()).lower() for p in prompt.split(",")}
    parts: list[tuple[str, set[str]]] = []
    for raw in text.split(","):
        tokens = raw.split()
        while tokens and " ".join(tokens).lower() not in theirs and tokens[-1].lower().strip(".;:!?\"'") in _DANGLING:
            tokens.pop()
        if not tokens:
            continue
        part, seen = " ".join(tokens), words(" ".join(tokens))
        if seen and any(seen <= earlier for _, earlier in parts):
            continue  # says nothing new
        parts = [parts[0]] + [(p, w) for p, w in parts[1:] if not (w and w < seen)] if parts else []
        parts.append((part, seen))
    if not parts:
        return None
    if len(parts) > MAX_PARTS:
        parts = [parts[0]] + parts[-(MAX_PARTS - 1) :]
    return ", ".join(p for p, _ in parts)


def is_fragment(text: str, prompt: str = "") -> bool:
    """Whether a candidate is not a whole phrase in `whole_phrase`'s sense (for measuring generators)."""
    return whole_phrase(text, prompt) != ", ".join(" ".join(p.split()) for p in text.split(",") if p.strip())


def split_phrases(raw: str) -> list[str]:
    """Split a model's reply into phrases on ' | ', newlines or semicolons (commas stay inside a phrase)."""
    parts = re.split(r"\s*\|\s*|\n+|;\s*", raw)
    return [p for p in (clean_phrase(part) for part in parts) if p]


def is_near_copy(a: str, b: str, threshold: float = 0.9) -> bool:
    """Token-set Jaccard: cheap enough for every candidate, and catches reorderings and case changes."""
    wa, wb = words(a), words(b)
    if not wa or not wb:
        return wa == wb
    return len(wa & wb) / len(wa | wb) >= threshold


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
    `fallback(category, k)` returns at least k more full prompts for a category. What neither fills comes from
    NEUTRAL_PHRASES; only where even those are near-copies (a degenerate prompt) is a category short, and logged.
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

    def tidy(text: str) -> str | None:
        return whole_phrase(clean_phrase(text, prompt), prompt)

    for category in CATEGORIES:
        chosen = []
        for text in proposals.get(category, ()):
            text = tidy(text)
            if len(chosen) < quota[category] and accept(text):
                chosen.append(Candidate(text, category, source))
        attempts = 0
        while fallback is not None and len(chosen) < quota[category] and attempts < 3:
            attempts += 1
            for text in fallback(category, 3 * quota[category] * attempts):
                text = tidy(text)
                if len(chosen) < quota[category] and accept(text):
                    chosen.append(Candidate(text, category, fallback_source))
        if fallback is not None and len(chosen) < quota[category]:
            # E.g. rephrasings of a long prompt, which all look alike: any text whose words differ from the prompt's
            # and from every other candidate's is accepted (a generator must not fail a turn).
            for text in fallback(category, 3 * quota[category] * (attempts + 1)):
                text = tidy(text)
                if len(chosen) < quota[category] and accept(text, threshold=1.0):
                    chosen.append(Candidate(text, category, fallback_source))
        for phrase in NEUTRAL_PHRASES[category]:
            if len(chosen) >= quota[category]:
                break
            text = tidy(phrase.format(p=prompt) if "{p}" in phrase else extend(prompt, phrase))
            if accept(text, threshold=1.0):
                chosen.append(Candidate(text, category, "neutral"))
        if len(chosen) < quota[category]:
            log.warning(
                "only %d of %d %r candidates for a prompt of %d characters",
                len(chosen),
                quota[category],
                category,
                len(prompt),
            )
        out.extend(chosen)
    return out
