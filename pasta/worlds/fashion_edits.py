"""The garment world's candidate edits of a prompt: another colour or pattern ("detail"), another style, another
garment ("subject"), another background ("creative"), and synonyms of the garment and colour words ("rephrase").
Every edit is something the garment model can draw (`FashionWorld.edits`)."""

from __future__ import annotations

import numpy as np

from pasta.worlds import fashion
from pasta.worlds.prompt_edits import alternation, extend, pick, replace_first, tidy, without

COLOUR = alternation(w for ws in fashion.COLOUR_WORDS.values() for w in ws)
GARMENT = alternation(w for ws in fashion.CLASS_WORDS.values() for w in ws)
PATTERN = alternation(
    [f"with {w}" for ws in fashion.PATTERN_NOUNS.values() for w in ws]
    + [w for ws in fashion.PATTERN_ADJECTIVES.values() for w in ws]
)
BACKGROUND = alternation(w for ws in fashion.BACKGROUND_PHRASES.values() for w in ws)
STYLE = alternation(
    [w for ws in fashion.STYLE_PREFIXES.values() for w in ws]
    + [w for ws in fashion.STYLE_SUFFIXES.values() for w in ws]
)
LAYOUTS = ("small, in the center", "large, close-up", "small, on the left", "small, on the right")


def with_colour(prompt: str, colour_word: str) -> str:
    if COLOUR.search(prompt):
        return replace_first(COLOUR, prompt, colour_word)
    if GARMENT.search(prompt):
        return tidy(GARMENT.sub(lambda m: f"{colour_word} {m.group(0)}", prompt, count=1))
    return extend(prompt, f"in {colour_word}")


def with_pattern(prompt: str, pattern: str) -> str:
    return extend(without(PATTERN, prompt), f"with {fashion.PATTERN_NOUNS[pattern][0]}")


def with_background(prompt: str, phrase: str) -> str:
    return extend(without(BACKGROUND, prompt), phrase)


def with_style(prompt: str, phrase: str) -> str:
    return extend(without(STYLE, prompt).removeprefix("of ").strip(), phrase)


def with_garment(prompt: str, garment_word: str) -> str:
    if GARMENT.search(prompt):
        return replace_first(GARMENT, prompt, garment_word)
    return extend(prompt, f"printed on a {garment_word}")


def synonyms(prompt: str) -> list[str]:
    """The prompt with its garment or colour word swapped for a synonym ("trousers" -> "pants")."""
    out = []
    for regex, table in ((GARMENT, fashion.CLASS_WORDS), (COLOUR, fashion.COLOUR_WORDS)):
        match = regex.search(prompt)
        if match:
            same = [ws for ws in table.values() if match.group(0).lower() in ws]
            out += [replace_first(regex, prompt, w) for w in (same[0] if same else ()) if w != match.group(0).lower()]
    return out


def fashion_edits(prompt: str, category: str, rng: np.random.Generator, k: int) -> list[str]:
    """Edits of one category, in random order (at least k where the world has that many)."""
    if category == "rephrase":
        edits = synonyms(prompt)
    elif category == "detail":
        edits = [with_colour(prompt, c) for c in pick(rng, [ws[0] for ws in fashion.COLOUR_WORDS.values()], k)]
        edits += [with_pattern(prompt, p) for p in pick(rng, fashion.PATTERNS[1:], 3)]
        edits += [extend(prompt, w) for w in pick(rng, LAYOUTS, 2)]
    elif category == "style":
        edits = [with_style(prompt, fashion.STYLE_SUFFIXES[s][int(rng.integers(3))]) for s in fashion.STYLES]
    elif category == "subject":
        edits = [with_garment(prompt, ws[int(rng.integers(len(ws)))]) for ws in fashion.CLASS_WORDS.values()]
    elif category == "creative":
        edits = [
            with_background(prompt, fashion.BACKGROUND_PHRASES[b][int(rng.integers(3))]) for b in fashion.BACKGROUNDS
        ]
    else:
        raise ValueError(f"unknown category {category!r}")
    return pick(rng, edits)
