"""The embedding-level world simulated users live in: every (garment, colour, pattern, background, style) of the
embedded tier as a canonical caption with a cached MiniLM embedding, and candidate edits made directly on those
attribute tuples.

Why: evaluating agents needs thousands of episodes; rendering and running a language model per turn would take
hours. The edits mirror what the real generators propose (pasta.candidates.retrieval: a new colour or pattern is
"detail", a new style "style", another garment "subject", a new scene "creative", other words "rephrase"), so a
policy trained here faces the same kind of choices as in the app.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pasta.contracts import CATEGORIES, Candidate
from pasta.paths import DATA_DIR
from pasta.worlds import fashion

AXES = ("garment", "colour", "pattern", "background", "style")
SIZES = tuple(len(fashion.ATTRIBUTE_VALUES[a]) for a in AXES)
# Which attribute each category edits (rephrase keeps the tuple and changes only the words).
CATEGORY_AXES = {
    "rephrase": (),
    "detail": ("colour", "pattern"),
    "style": ("style",),
    "subject": ("garment",),
    "creative": ("background",),
}


def canonical_caption(t: tuple[int, ...]) -> str:
    g, c, p, b, s = (fashion.ATTRIBUTE_VALUES[a][i] for a, i in zip(AXES, t, strict=True))
    pattern = f" {fashion.PATTERN_ADJECTIVES[p][0]}" if p != "plain" else ""
    background = fashion.BACKGROUND_PHRASES[b][0]
    article = "an" if c[0] in "aeiou" else "a"
    return f"{fashion.STYLE_PREFIXES[s][0]} {article} {c}{pattern} {g} {background}"


@dataclass
class SimCandidate:
    """A candidate of the simulated world: its attribute tuple index and the Candidate a policy sees."""

    index: int
    candidate: Candidate


class EmbeddingWorld:
    """All attribute tuples, their captions and unit-norm text embeddings (computed once, cached on disk)."""

    def __init__(self, embed=None, cache_dir: Path | None = None) -> None:
        self.tuples = np.array(list(itertools.product(*(range(n) for n in SIZES))), np.int16)
        self.captions = [canonical_caption(tuple(int(v) for v in t)) for t in self.tuples]
        key = hashlib.sha1("\n".join(self.captions).encode()).hexdigest()[:16]
        shipped = DATA_DIR / "sim" / f"world-{key}.npy"  # fp16, built by `python -m user_sim.world`
        cache = (
            cache_dir or Path(os.environ.get("PASTA_CACHE", Path.home() / ".cache" / "pasta"))
        ) / f"world-{key}.npy"
        if shipped.exists():
            self.embeddings = np.load(shipped).astype(np.float32)
        elif cache.exists():
            self.embeddings = np.load(cache)
        else:
            if embed is None:
                from pasta.backends.minilm import shared_minilm

                embed = shared_minilm().embed
            self.embeddings = np.concatenate(
                [embed(self.captions[i : i + 512]) for i in range(0, len(self.captions), 512)]
            ).astype(np.float32)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.stem + f".{os.getpid()}.tmp.npy")
            np.save(tmp, self.embeddings)
            tmp.replace(cache)
        self._strides = np.cumprod((1,) + SIZES[::-1])[:-1][::-1]

    def known_text_embeddings(self, versions: int = 5) -> dict[str, np.ndarray]:
        """Caption (and rephrase-variant) text -> embedding, to seed a TextEmbeddingCache for simulator logs."""
        out = {}
        for caption, vector in zip(self.captions, self.embeddings, strict=True):
            out[caption] = vector
            for v in range(versions):
                out[f"{caption}, version {v + 1}"] = vector
        return out

    def __len__(self) -> int:
        return len(self.tuples)

    def index_of(self, t) -> int:
        return int(np.dot(np.asarray(t, np.int64), self._strides))

    def attributes(self, index: int) -> dict[str, str]:
        return {a: fashion.ATTRIBUTE_VALUES[a][int(v)] for a, v in zip(AXES, self.tuples[index], strict=True)}

    def random_prompt(self, rng: np.random.Generator) -> int:
        return int(rng.integers(len(self)))

    def single_edits(self, index: int, axes: tuple[str, ...]) -> list[int]:
        """Every tuple that differs from `index` in exactly one of `axes`."""
        current, out = self.tuples[index], []
        for axis_name in axes:
            axis = AXES.index(axis_name)
            for value in range(SIZES[axis]):
                if value != current[axis]:
                    t = current.copy()
                    t[axis] = value
                    out.append(self.index_of(t))
        return out

    def propose(self, index: int, rng: np.random.Generator, n: int = 25) -> list[SimCandidate]:
        """n candidates, n // 5 per category, as attribute edits of the current tuple: distinct single edits
        along the category's attributes, topped up with an edit plus one more random change where the category
        has too few (style has only three alternatives)."""
        per = n // len(CATEGORIES)
        out: list[SimCandidate] = []
        for category in CATEGORIES:
            axes = CATEGORY_AXES[category]
            if not axes:  # rephrase: same content, other words
                out += [
                    SimCandidate(index, Candidate(f"{self.captions[index]}, version {v + 1}", category, "simulator"))
                    for v in range(per)
                ]
                continue
            options = self.single_edits(index, axes)
            chosen = [options[i] for i in rng.permutation(len(options))[:per]]
            while len(chosen) < per:
                other = tuple(a for a in AXES if a not in axes)
                extra = self.single_edits(chosen[len(chosen) % len(options)], (other[int(rng.integers(len(other)))],))
                chosen.append(extra[int(rng.integers(len(extra)))])
            out += [SimCandidate(j, Candidate(self.captions[j], category, "simulator")) for j in chosen]
        return out


if __name__ == "__main__":
    # Rebuild the shipped embeddings (after changing captions or the attribute world).
    world = EmbeddingWorld()
    key = hashlib.sha1("\n".join(world.captions).encode()).hexdigest()[:16]
    out = DATA_DIR / "sim" / f"world-{key}.npy"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, world.embeddings.astype(np.float16))
    print(f"wrote {out} ({len(world)} tuples)")
