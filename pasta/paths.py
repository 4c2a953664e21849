"""Where shipped weights and data live: beside the package in a checkout (pip install -e .), or where
PASTA_MODELS_DIR / PASTA_DATA_DIR point."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = Path(os.environ.get("PASTA_MODELS_DIR", REPO_ROOT / "models"))
DATA_DIR = Path(os.environ.get("PASTA_DATA_DIR", REPO_ROOT / "data"))
EMBEDDED_DIR = MODELS_DIR / "embedded"
