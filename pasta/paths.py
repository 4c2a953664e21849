"""Where shipped weights and data live: beside the package in a checkout (pip install -e .), or where
PASTA_MODELS_DIR / PASTA_DATA_DIR point; and where derived files are cached (PASTA_CACHE)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = Path(os.environ.get("PASTA_MODELS_DIR", REPO_ROOT / "models"))
DATA_DIR = Path(os.environ.get("PASTA_DATA_DIR", REPO_ROOT / "data"))
EMBEDDED_DIR = MODELS_DIR / "embedded"


def cache_dir() -> Path:
    """Files derived from shipped ones and rebuilt when missing (embeddings, converted models): PASTA_CACHE or
    ~/.cache/pasta. Read at call time, so a test or a Space can point it elsewhere."""
    return Path(os.environ.get("PASTA_CACHE", Path.home() / ".cache" / "pasta"))
