"""The app's shown-image folders: private, named by content, gone at once when a page closes."""

import stat
from pathlib import Path

from PIL import Image

from pasta.app.shown_images import ShownImages


def test_a_browser_folder_is_private_and_forgotten_whole(tmp_path):
    shown = ShownImages(tmp_path / "shown")
    red, blue = Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 64), "blue")
    paths = shown.files("secret-session-hash", [red, blue, red])
    assert paths[0] == paths[2] != paths[1]  # named by content: written once
    folder = shown.folder("secret-session-hash")
    assert "secret-session-hash" not in str(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(shown.root.parent.stat().st_mode) == 0o700
    other = shown.files("another-browser", [red])
    shown.export_folder("secret-session-hash")

    shown.forget("secret-session-hash")
    assert not folder.exists() and list(shown.root.iterdir()) == [shown.folder("another-browser")]
    assert not any(Path(p).exists() for p in paths)
    shown.forget("secret-session-hash")  # a second close, or a page that never rendered: nothing to do
    shown.forget("never-seen")
    assert Image.open(other[0]).size[0] > 0

    shown.close()
    assert not shown.root.exists()
