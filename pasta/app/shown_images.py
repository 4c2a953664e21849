"""The image files a browser is shown, and their end: one private folder per browser connection, deleted when its
page closes.

Why: Gradio writes every image an app returns into its shared cache folder and serves it to anyone with the URL,
for as long as the file is there; for a person who did not consent to logging, that is their session kept. So the
app writes what it shows itself, into a folder of Gradio's upload area (served without a copy, since Gradio serves
that area) that only this process's user may read (mode 0700), named by a hash of the browser's secret session
hash and a random per-app salt, and deletes the folder when Gradio reports the page closed (`Blocks.unload`) and
when the app starts (folders of an app that was killed). Logged sessions lose nothing by this: the log store
keeps their images elsewhere, and they are shown again from there.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
import time
from pathlib import Path

from PIL import Image

from pasta.app.views import for_display

STALE_SECONDS = 24 * 3600
"""Folders older than this, of any app on this machine, are deleted when an app starts (a killed app's)."""


def gradio_upload_folder() -> Path:
    """The folder Gradio serves files from without copying them (GRADIO_TEMP_DIR, else <tmp>/gradio)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


class ShownImages:
    def __init__(self, root: str | Path | None = None) -> None:
        base = Path(root) if root is not None else gradio_upload_folder() / "pasta-shown"
        base.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o700)
        now = time.time()
        for old in base.iterdir():
            if old.is_dir() and now - old.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        self.root = base / secrets.token_hex(8)  # this app's own: several apps may share a machine's cache
        self.root.mkdir(mode=0o700)
        self._salt = secrets.token_bytes(16)

    def folder(self, browser: str) -> Path:
        """The folder of one browser connection (Gradio's session hash); its name reveals nothing of the hash."""
        return self.root / hashlib.sha256(self._salt + browser.encode()).hexdigest()[:32]

    def files(self, browser: str, images: list[Image.Image]) -> list[str]:
        """Each image at display size, as a file in the browser's folder (written once; named by content)."""
        folder = self.folder(browser)
        folder.mkdir(mode=0o700, exist_ok=True)
        paths = []
        for image in images:
            buffer = io.BytesIO()
            # JPEG at quality 92: 0.5 ms for a 256 px image where lossless WebP takes 140 ms (16 per turn)
            for_display(image).convert("RGB").save(buffer, format="JPEG", quality=92)
            data = buffer.getvalue()
            path = folder / f"{hashlib.sha256(data).hexdigest()[:24]}.jpg"
            if not path.exists():
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_bytes(data)
                tmp.replace(path)
            paths.append(str(path))
        return paths

    def export_folder(self, browser: str) -> Path:
        """Where a browser's session export is written: gone with the rest when the page closes."""
        folder = self.folder(browser) / "export"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder

    def forget(self, browser: str) -> None:
        """Delete everything written for a browser (its page closed).

        The folder is first renamed to a random name, so all its URLs stop resolving at one instant rather than one
        file at a time while the tree is removed. (A request that Gradio has already found the file for, an instant
        before, can still fail with a 500 when the file vanishes under it: the check and the read are two steps in
        Gradio's file route.)
        """
        folder = self.folder(browser)
        doomed = self.root / f".gone-{secrets.token_hex(8)}"
        try:
            folder.rename(doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
