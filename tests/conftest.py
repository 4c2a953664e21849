"""Shared fixtures: real components, loaded once per test session; one torch thread so tests stay polite."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(int(os.environ.get("PASTA_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def minilm():
    from pasta.backends.minilm import shared_minilm

    return shared_minilm()


@pytest.fixture(scope="session")
def retrieval(minilm):
    from pasta.retrieval_generator import RetrievalGenerator

    return RetrievalGenerator(minilm.embed)


@pytest.fixture(scope="session")
def embedded_t2i(minilm):
    from pasta.backends.embedded_t2i import DEFAULT_MODEL_DIR, EmbeddedTextToImage

    if not (DEFAULT_MODEL_DIR / "unet" / "config.json").exists():
        pytest.skip("no shipped embedded weights (models/embedded/t2i)")
    return EmbeddedTextToImage(text=minilm)
