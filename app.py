"""PASTA co-creation app: `python app.py` (or `pasta app`). Hugging Face Spaces runs this file."""

import os

from pasta.config import Settings
from pasta.ui import build_demo, launch

settings = Settings.from_env()
if os.environ.get("SPACE_ID") and "PASTA_HOST" not in os.environ:
    settings = settings.with_overrides(host="0.0.0.0")  # a Space serves on all interfaces
demo = build_demo(settings)

if __name__ == "__main__":
    launch(demo, settings)
