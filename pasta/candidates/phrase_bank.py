"""Prompt-modifier phrases for the retrieval candidate generator and for caption augmentation.

Source: the phrase lists shipped as data files in the PyPI package `clip-interrogator` (MIT), read from disk
without importing the package (its import pulls in CLIP/BLIP code that downloads weights). The edits that move
images along axes the embedded model can render come from the active world (`World.edits`).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

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
