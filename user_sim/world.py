"""The embedding-level world simulated users live in: every attribute tuple of an `AttributeWorld` (by default
the embedded tier's default world, `fashion`) as its canonical caption with a cached MiniLM
embedding, and candidate edits made directly on those tuples.

Why: evaluating agents needs thousands of episodes; rendering and running a language model per turn would take
hours. The edits change the axes the world says each candidate category edits (`AttributeWorld.category_axes`),
as the world's own prompt edits do for the real generators (`World.edits`), so a policy trained here faces the
same kind of choices as in the app.
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
from pasta.paths import cache_dir as default_cache_dir
from pasta.worlds import load_world
from pasta.worlds.world import AttributeWorld

DEFAULT_WORLD: AttributeWorld = load_world("fashion")
AXES = tuple(DEFAULT_WORLD.attribute_axes)
SIZES = tuple(len(v) for v in DEFAULT_WORLD.attribute_axes.values())
CATEGORY_AXES = DEFAULT_WORLD.category_axes
"""The default world's axes, their sizes and which axes each candidate category edits."""


@dataclass
class SimCandidate:
    """A candidate of the simulated world: its attribute tuple index and the Candidate a policy sees."""

    index: int
    candidate: Candidate


class EmbeddingWorld:
    """All attribute tuples, their captions and unit-norm text embeddings (computed once, cached on disk)."""

    def __init__(self, embed=None, cache_dir: Path | None = None, world: AttributeWorld | None = None) -> None:
        self.world = world or DEFAULT_WORLD
        self.axes = tuple(self.world.attribute_axes)
        self.sizes = tuple(len(v) for v in self.world.attribute_axes.values())
        self.category_axes = self.world.category_axes
        self.tuples = np.array(list(itertools.product(*(range(n) for n in self.sizes))), np.int16)
        self.captions = [self.world.canonical_caption(self.values(t)) for t in self.tuples]
        key = hashlib.sha1("\n".join(self.captions).encode()).hexdigest()[:16]
        shipped = DATA_DIR / "sim" / f"world-{key}.npy"  # fp16, built by `python -m user_sim.world`
        cache = (cache_dir or default_cache_dir()) / f"world-{key}.npy"
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
        self._strides = np.cumprod((1,) + self.sizes[::-1])[:-1][::-1]

    def values(self, t) -> dict[str, str]:
        """Axis -> value of one tuple of indices."""
        return {a: self.world.attribute_axes[a][int(i)] for a, i in zip(self.axes, t, strict=True)}

    def known_text_embeddings(self) -> dict[str, np.ndarray]:
        """Caption -> embedding: every text the simulator shows or logs, to seed a TextEmbeddingCache."""
        return dict(zip(self.captions, self.embeddings, strict=True))

    def __len__(self) -> int:
        return len(self.tuples)

    def index_of(self, t) -> int:
        return int(np.dot(np.asarray(t, np.int64), self._strides))

    def attributes(self, index: int) -> dict[str, str]:
        return self.values(self.tuples[index])

    def random_prompt(self, rng: np.random.Generator) -> int:
        return int(rng.integers(len(self)))

    def single_edits(self, index: int, axes: tuple[str, ...]) -> list[int]:
        """Every tuple that differs from `index` in exactly one of `axes`."""
        current, out = self.tuples[index], []
        for axis_name in axes:
            axis = self.axes.index(axis_name)
            for value in range(self.sizes[axis]):
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
            axes = self.category_axes[category]
            if not axes:  # rephrase: the same tuple. Its text is the caption the policy sees embedded, so a model
                # retrained from these logs learns from the vectors the policy was shown
                out += [SimCandidate(index, Candidate(self.captions[index], category, "simulator"))] * per
                continue
            options = self.single_edits(index, axes)
            chosen = [options[i] for i in rng.permutation(len(options))[:per]]
            while len(chosen) < per:
                other = tuple(a for a in self.axes if a not in axes)
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
