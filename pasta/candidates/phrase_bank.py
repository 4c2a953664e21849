"""Prompt-modifier phrases for the retrieval candidate generator and for caption augmentation.

Sources: the phrase lists shipped as data files in the PyPI package `clip-interrogator` (MIT), read from disk
without importing the package (its import pulls in CLIP/BLIP code that downloads weights), plus the attribute
phrases of the embedded tier's world (pasta.worlds.fashion), which move its images along axes the model can render.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from pasta.worlds import fashion

# Which phrase list feeds which candidate category (see pasta.candidates.clean.CATEGORIES).
_CLIP_INTERROGATOR_FILES = {
    "flavors": "flavors.txt",
    "mediums": "mediums.txt",
    "movements": "movements.txt",
    "artists": "artists.txt",
}


def clip_interrogator_data_dir() -> Path | None:
    spec = importlib.util.find_spec("clip_interrogator")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "data"
    return folder if folder.is_dir() else None


@lru_cache(maxsize=1)
def clip_interrogator_phrases() -> dict[str, tuple[str, ...]]:
    """The package's lists by name ({} when the package is not installed)."""
    folder = clip_interrogator_data_dir()
    if folder is None:
        return {}
    out = {}
    for name, filename in _CLIP_INTERROGATOR_FILES.items():
        path = folder / filename
        if path.exists():
            lines = (line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines())
            out[name] = tuple(dict.fromkeys(line for line in lines if 2 <= len(line) <= 60))
    return out


@lru_cache(maxsize=1)
def attribute_phrases() -> dict[str, tuple[str, ...]]:
    """Phrases per attribute of the embedded world, e.g. colour -> ("red", "crimson", ...)."""
    return {
        "garment": tuple(w for words in fashion.CLASS_WORDS.values() for w in words),
        "colour": tuple(w for words in fashion.COLOUR_WORDS.values() for w in words),
        "pattern": tuple(w for k, words in fashion.PATTERN_NOUNS.items() if k != "plain" for w in words)
        + tuple(f"{w} pattern" for k, words in fashion.PATTERN_ADJECTIVES.items() if k != "plain" for w in words),
        "background": tuple(w for words in fashion.BACKGROUND_PHRASES.values() for w in words),
        "style": tuple(w for words in fashion.STYLE_SUFFIXES.values() for w in words),
        "size": ("small", "tiny", "large", "big", "close-up"),
        "position": tuple(w for words in fashion.POSITION_PHRASES.values() for w in words),
    }
