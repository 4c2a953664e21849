"""A fast candidate generator: edits along the embedded world's attributes plus nearest phrases from a phrase bank.

Why: it answers in milliseconds, needs no language model, and every edit it makes (`World.edits`: in the garment
world a new colour, pattern, background, style or garment; in the emoji world another subject, scene, style,
layout or count) is something the embedded diffusion model can render. It is the fallback
that tops up the LMM generator, and the generator tests use. Phrases from `clip-interrogator`'s lists are
indexed with faiss over MiniLM embeddings; the index is built once and cached on disk.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from pasta.candidates.clean import assemble, extend
from pasta.candidates.phrase_bank import clip_interrogator_phrases
from pasta.contracts import Candidate
from pasta.paths import DATA_DIR, cache_dir
from pasta.worlds.prompt_edits import pick
from pasta.worlds.world import World

FLAVOR_SUBSET = 4000
"""Flavor phrases indexed (a seeded sample of the ~100k, short ones): enough variety, a few seconds to embed."""


def _phrase_pools() -> dict[str, list[str]]:
    bank = clip_interrogator_phrases()
    rng = np.random.default_rng(0)
    flavors = [p for p in bank.get("flavors", ()) if p.isascii() and 1 <= len(p.split()) <= 4]
    if len(flavors) > FLAVOR_SUBSET:
        flavors = [flavors[i] for i in sorted(rng.choice(len(flavors), FLAVOR_SUBSET, replace=False))]
    mediums = list(bank.get("mediums", ())) + [f"{m} style" for m in bank.get("movements", ())]
    return {"flavors": flavors, "mediums": mediums}


def shipped_phrase_file(phrases: list[str]) -> Path:
    """Where the project ships a phrase list's MiniLM embeddings (fp16, `python -m pasta.candidates.retrieval`):
    embedding the ~5,000 phrases took 25-50 s of a fresh machine's first start (and of every cold test run)."""
    return DATA_DIR / "retrieval" / f"phrases-{_key(phrases)}.npy"


def _key(phrases: list[str]) -> str:
    return hashlib.sha1("\n".join(phrases).encode()).hexdigest()[:16]


def _embed_phrases(phrases: list[str], embed) -> np.ndarray:
    """[N, D] unit-norm embeddings of a phrase list, 256 phrases per call."""
    return np.concatenate([embed(phrases[i : i + 256]) for i in range(0, len(phrases), 256)])


class PhraseIndex:
    """faiss inner-product index over unit-norm MiniLM embeddings of one phrase list: the shipped ones where the
    installed phrase lists match them, else computed once and cached."""

    def __init__(self, phrases: list[str], embed) -> None:
        import faiss

        self.phrases = phrases
        shipped, path = shipped_phrase_file(phrases), cache_dir() / f"phrases-{_key(phrases)}.npy"
        if shipped.exists():
            vectors = np.load(shipped).astype(np.float32)
        elif path.exists():
            vectors = np.load(path)
        else:
            vectors = _embed_phrases(phrases, embed)
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


REPHRASINGS = (
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
)
"""Other words for the same picture, in any world."""


class RetrievalGenerator:
    """`CandidateGenerator` from attribute edits and faiss-retrieved phrases; deterministic for a history."""

    name = "retrieval"

    def __init__(self, embed=None, world: World | None = None) -> None:
        if world is None:
            from pasta.worlds import load_world

            world = load_world("fashion")
        self.world = world
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

        near: list[str] = []
        if category in ("detail", "creative", "style") and query is not None:
            index = self.mediums if category == "style" else self.flavors
            if index is not None:
                pool = index.nearest(query, 12 * k)
                near = pick(rng, pool[len(pool) // 3 :] if category == "creative" else pool[: 4 * k], 2 * k)
        edits = self.world.edits(prompt, category, rng, k)
        if category == "rephrase":
            return edits[:k] + [t.format(p=prompt) for t in pick(rng, REPHRASINGS)]
        if category == "subject":
            return edits
        return _interleave(edits, [extend(prompt, p) for p in near])

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


if __name__ == "__main__":
    # Ship the phrase lists' embeddings (after the clip-interrogator phrase lists or the text model change).
    from pasta.backends.minilm import shared_minilm

    embed = shared_minilm().embed
    for name, phrases in _phrase_pools().items():
        out = shipped_phrase_file(phrases)
        vectors = _embed_phrases(phrases, embed)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, vectors.astype(np.float16))
        print(f"wrote {out} ({len(phrases)} {name} phrases)")
