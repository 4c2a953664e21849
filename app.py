"""PASTA co-creation app: `python app.py` (or `pasta app`). Hugging Face Spaces runs this file."""

from pasta.config import Settings
from pasta.ui import CSS, build_demo

settings = Settings.from_env()
demo = build_demo(settings)

if __name__ == "__main__":
    demo.launch(server_name=settings.host, server_port=settings.port, css=CSS)
