"""A GGUF chat model converted once to a transformers folder in the cache, so later loads skip the conversion.

Why: transformers reads a GGUF file three times (config, tokenizer, weights), each a pure-Python walk over its
metadata (SmolLM2's 49k-token vocabulary and merges), then de-quantizes every tensor: loading the 135M SmolLM2 took
42 s on a 2-core AMD EPYC, most of the app's start-up. The same model saved as safetensors loads in a few seconds.
The converted folder is keyed by the GGUF file's content and the transformers version (which does the
de-quantizing), so another file or another converter never reuses it; a cache that cannot be written only costs
the next start its speed. Each conversion is about four times its GGUF (517 MB for SmolLM2), so a start that uses
one marks it used and removes the same file's other conversions that no start has used for `UNUSED_DAYS`
(another GGUF release, an older transformers), and temporary folders of conversions that died.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

from safetensors.torch import save_model

from pasta.paths import cache_dir

log = logging.getLogger(__name__)

UNUSED_DAYS = 30
"""A conversion no start has used for this long is removed when a start uses another of the same GGUF file."""
DEAD_TMP_S = 24 * 3600
"""A temporary folder this old belongs to a conversion that died."""


def converted_folder(folder: str | Path, gguf_file: str, dtype) -> Path:
    """Where `folder/gguf_file`, converted at `dtype`, is (or will be) cached."""
    import transformers

    digest = hashlib.sha1(f"{transformers.__version__}|{dtype}|".encode())
    with open(Path(folder) / gguf_file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return cache_dir() / "gguf" / f"{Path(gguf_file).stem}-{digest.hexdigest()[:16]}"


def is_complete(folder: Path) -> bool:
    return (folder / "config.json").exists() and any(folder.glob("*.safetensors"))


def save_converted(model, tokenizer, folder: Path) -> bool:
    """Save a model and tokenizer loaded from a GGUF file into `folder`, atomically (a half-written folder is never
    seen as a cache hit). Returns whether it was saved; failures are logged, not raised."""
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        # The weights are plain tensors once de-quantized, but transformers refuses `save_pretrained` on a model
        # loaded through its GGUF quantizer; its config, minus the quantization entry, and its tensors are the model.
        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"))  # one copy of tied weights
        tokenizer.save_pretrained(tmp)
        if not is_complete(tmp):
            raise OSError(f"{tmp} is missing its config or weights after saving")
        tmp.rename(folder)
        return True
    except Exception as error:  # a cache is an optimisation: a full disk or a serializer's error never stops a start
        if is_complete(folder):  # another process finished the same conversion first
            return True
        log.warning("could not cache the converted model in %s (%s): the next start converts it again", folder, error)
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def mark_used_and_prune(folder: Path, now: float | None = None) -> list[Path]:
    """Mark `folder` (a complete conversion) used now, and remove the same GGUF file's other conversions unused for
    `UNUSED_DAYS` and dead temporary folders beside it. Returns what was removed; never raises."""
    now = time.time() if now is None else now
    removed = []
    try:
        os.utime(folder, (now, now))
        stem = folder.name.rsplit("-", 1)[0]
        for other in folder.parent.iterdir():
            if other == folder or not other.is_dir():
                continue
            age = now - other.stat().st_mtime
            dead_tmp = other.name.endswith(".tmp") and age > DEAD_TMP_S
            stale = (
                other.name.rsplit("-", 1)[0] == stem and not other.name.endswith(".tmp") and age > UNUSED_DAYS * 86400
            )
            if dead_tmp or stale:
                shutil.rmtree(other, ignore_errors=True)
                removed.append(other)
    except OSError as error:  # a cache is an optimisation: pruning it never stops a start
        log.warning("could not prune the converted-model cache beside %s (%s)", folder, error)
    for path in removed:
        log.info("removed %s from the converted-model cache (unused)", path)
    return removed
