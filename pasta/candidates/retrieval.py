"""A fast candidate generator: edits along the embedded world's attributes plus nearest phrases from a phrase bank.

Why: it answers in milliseconds, needs no language model, and every edit it makes (a new colour, a pattern, a
background, a style, another garment) is something the embedded diffusion model can render. It is the fallback
that tops up the LMM generator, and the generator tests use. Phrases from `clip-interrogator`'s lists are
indexed with faiss over MiniLM embeddings; the index is built once and cached on disk.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from pasta.candidates.clean import assemble, extend
from pasta.candidates.phrase_bank import clip_interrogator_phrases
from pasta.contracts import Candidate
from pasta.worlds import fashion

FLAVOR_SUBSET = 4000
"""Flavor phrases indexed (a seeded sample of the ~100k, short ones): enough variety, a few seconds to embed."""


def _cache_dir() -> Path:
    return Path(os.environ.get("PASTA_CACHE", Path.home() / ".cache" / "pasta"))


def _phrase_pools() -> dict[str, list[str]]:
    bank = clip_interrogator_phrases()
    rng = np.random.default_rng(0)
    flavors = [p for p in bank.get("flavors", ()) if p.isascii() and 1 <= len(p.split()) <= 4]
    if len(flavors) > FLAVOR_SUBSET:
        flavors = [flavors[i] for i in sorted(rng.choice(len(flavors), FLAVOR_SUBSET, replace=False))]
    mediums = list(bank.get("mediums", ())) + [f"{m} style" for m in bank.get("movements", ())]
    return {"flavors": flavors, "mediums": mediums}


class PhraseIndex:
    """faiss inner-product index over unit-norm MiniLM embeddings of one phrase list."""

    def __init__(self, phrases: list[str], embed) -> None:
        import faiss

        self.phrases = phrases
        key = hashlib.sha1("\n".join(phrases).encode()).hexdigest()[:16]
        path = _cache_dir() / f"phrases-{key}.npy"
        if path.exists():
            vectors = np.load(path)
        else:
            vectors = np.concatenate([embed(phrases[i : i + 256]) for i in range(0, len(phrases), 256)])
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.npy")
            np.save(tmp, vectors.astype(np.float32))
            tmp.replace(path)
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def nearest(self, query: np.ndarray, k: int) -> list[str]:
        k = min(k, len(self.phrases))
        if k == 0:
            return []
        _, idx = self.index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k)
        return [self.phrases[i] for i in idx[0] if i >= 0]


# ------------------------------------------------------------------------------ attribute edits of a prompt


def _alternation(phrases) -> re.Pattern:
    ordered = sorted(set(phrases), key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(p) for p in ordered) + r")\b", re.IGNORECASE)


_COLOUR_RE = _alternation(w for ws in fashion.COLOUR_WORDS.values() for w in ws)
_GARMENT_RE = _alternation(w for ws in fashion.CLASS_WORDS.values() for w in ws)
_PATTERN_RE = _alternation(
    [f"with {w}" for k, ws in fashion.PATTERN_NOUNS.items() for w in ws]
    + [w for k, ws in fashion.PATTERN_ADJECTIVES.items() for w in ws]
)
_BACKGROUND_RE = _alternation(w for ws in fashion.BACKGROUND_PHRASES.values() for w in ws)
_STYLE_RE = _alternation(
    [w for ws in fashion.STYLE_PREFIXES.values() for w in ws]
    + [w for ws in fashion.STYLE_SUFFIXES.values() for w in ws]
)


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.])", r"\1", text)
    text = re.sub(r",\s*,+", ",", text)
    text = re.sub(r"\b([Aa]) ([aeiou])", r"\1n \2", text)
    return text.strip(" ,")


def with_colour(prompt: str, colour_word: str) -> str:
    if _COLOUR_RE.search(prompt):
        return _tidy(_COLOUR_RE.sub(colour_word, prompt, count=1))
    if _GARMENT_RE.search(prompt):
        return _tidy(_GARMENT_RE.sub(lambda m: f"{colour_word} {m.group(0)}", prompt, count=1))
    return extend(prompt, f"in {colour_word}")


def with_pattern(prompt: str, pattern: str) -> str:
    base = _tidy(_PATTERN_RE.sub("", prompt))
    return extend(base, f"with {fashion.PATTERN_NOUNS[pattern][0]}")


def with_background(prompt: str, phrase: str) -> str:
    return extend(_tidy(_BACKGROUND_RE.sub("", prompt)), phrase)


def with_style(prompt: str, phrase: str) -> str:
    return extend(_tidy(_STYLE_RE.sub("", prompt)).removeprefix("of ").strip(), phrase)


def with_garment(prompt: str, garment_word: str) -> str:
    if _GARMENT_RE.search(prompt):
        return _tidy(_GARMENT_RE.sub(garment_word, prompt, count=1))
    return extend(prompt, f"printed on a {garment_word}")


class RetrievalGenerator:
    """`CandidateGenerator` from attribute edits and faiss-retrieved phrases; deterministic for a history."""

    name = "retrieval"

    def __init__(self, embed=None) -> None:
        if embed is None:
            from pasta.backends.minilm import shared_minilm

            embed = shared_minilm().embed
        self.embed = embed
        pools = _phrase_pools()
        self.flavors = PhraseIndex(pools["flavors"], embed) if pools["flavors"] else None
        self.mediums = PhraseIndex(pools["mediums"], embed) if pools["mediums"] else None

    def _rng(self, history: list[str], salt: str) -> np.random.Generator:
        digest = hashlib.sha1(("\x1f".join(history) + salt).encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def options(self, history: list[str], category: str, k: int, query: np.ndarray | None = None) -> list[str]:
        """At least k full candidate prompts for one category, most relevant first within each kind of edit."""
        prompt = history[-1]
        rng = self._rng(history, category + str(k))

        def pick(values, m):
            values = list(values)
            return [values[i] for i in rng.permutation(len(values))[:m]]

        near: list[str] = []
        if category in ("detail", "creative", "style") and query is not None:
            index = self.mediums if category == "style" else self.flavors
            if index is not None:
                pool = index.nearest(query, 12 * k)
                near = pick(pool[len(pool) // 3 :] if category == "creative" else pool[: 4 * k], 2 * k)
        if category == "rephrase":
            swaps = []
            for regex, table in ((_GARMENT_RE, fashion.CLASS_WORDS), (_COLOUR_RE, fashion.COLOUR_WORDS)):
                match = regex.search(prompt)
                if match:
                    synonyms = [ws for ws in table.values() if match.group(0).lower() in ws]
                    for synonym in synonyms[0] if synonyms else ():
                        if synonym != match.group(0).lower():
                            swaps.append(_tidy(regex.sub(synonym, prompt, count=1)))
            templates = [
                "an image of {p}",
                "{p}, high quality",
                "a picture showing {p}",
                "{p}, detailed",
                "a clean depiction of {p}",
                "{p}, well composed",
                "a simple image of {p}",
                "{p}, sharp focus",
                "a photo of {p}",
                "{p}, in full view",
                "a rendering of {p}",
                "{p}, clearly shown",
            ]
            return pick(swaps, k) + [t.format(p=prompt) for t in pick(templates, len(templates))]
        if category == "detail":
            edits = [with_colour(prompt, c) for c in pick([ws[0] for ws in fashion.COLOUR_WORDS.values()], k)]
            edits += [with_pattern(prompt, p) for p in pick(fashion.PATTERNS[1:], 3)]
            edits += [
                extend(prompt, w)
                for w in pick(
                    ["small, in the center", "large, close-up", "small, on the left", "small, on the right"], 2
                )
            ]
            return _interleave(pick(edits, len(edits)), [extend(prompt, p) for p in near])
        if category == "style":
            edits = [with_style(prompt, fashion.STYLE_SUFFIXES[s][int(rng.integers(3))]) for s in fashion.STYLES]
            return _interleave(pick(edits, len(edits)), [extend(prompt, p) for p in near])
        if category == "subject":
            garments = [ws[int(rng.integers(len(ws)))] for ws in fashion.CLASS_WORDS.values()]
            return [_tidy(with_garment(prompt, g)) for g in pick(garments, len(garments))]
        if category == "creative":
            scenes = [
                with_background(prompt, fashion.BACKGROUND_PHRASES[b][int(rng.integers(3))])
                for b in fashion.BACKGROUNDS
            ]
            return _interleave(pick(scenes, len(scenes)), [extend(prompt, p) for p in near])
        raise ValueError(f"unknown category {category!r}")

    def propose(self, history: list[str], n: int = 25) -> list[Candidate]:
        history = _check_history(history)
        query = self.embed([history[-1]])[0]
        proposals = {
            c: self.options(history, c, n // 5 + 1, query)
            for c in ("rephrase", "detail", "style", "subject", "creative")
        }
        return assemble(
            history[-1],
            proposals,
            n,
            lambda c, k: self.options(history, c, k, query),
            source=self.name,
            fallback_source=self.name,
        )


def _interleave(a: list[str], b: list[str]) -> list[str]:
    """Mostly renderable attribute edits, with a retrieved phrase every third place."""
    out, ia, ib = [], 0, 0
    while ia < len(a) or ib < len(b):
        take_b = (len(out) % 3 == 2 and ib < len(b)) or ia >= len(a)
        if take_b:
            out.append(b[ib])
            ib += 1
        else:
            out.append(a[ia])
            ia += 1
    return out


def _check_history(history: list[str]) -> list[str]:
    if isinstance(history, str):
        history = [history]
    if not history or not all(isinstance(h, str) for h in history):
        raise TypeError("history must be a non-empty list of prompt strings (initial prompt first)")
    if not history[-1].strip():
        raise ValueError("the current prompt is empty: type what you would like to see")
    return [h.strip() for h in history]
