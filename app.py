"""PASTA co-creation app: `python app.py` (or `pasta app`). Hugging Face Spaces runs this file."""

import os

from pasta.app.ui import build_demo, launch
from pasta.config import Settings
from pasta.console import report

try:
    settings = Settings.from_env()
    if os.environ.get("SPACE_ID") and "PASTA_HOST" not in os.environ:
        settings = settings.with_overrides(host="0.0.0.0")  # a Space serves on all interfaces
    demo = build_demo(settings)  # a bad log path, a foreign log store or missing weights stop here, in one line
except Exception as error:
    raise SystemExit(report(error)) from None

if __name__ == "__main__":
    launch(demo, settings)
