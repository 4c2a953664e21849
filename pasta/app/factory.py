"""Everything the app needs, built once from Settings: the tier's models, the slate policy, the log store and its
recorder, ZeroGPU wrapping. Shared, read-only parts only: per-person state stays in `Session`s.

Missing pieces degrade with a notice instead of a crash where a working app is still possible: no trained agent
means the LMM-order baseline, no SmolLM2 package means the retrieval generator. A log store that cannot be opened
stops start-up with the log store's own message (the file is left untouched).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pasta.agent import Agent
from pasta.config import Settings

log = logging.getLogger(__name__)


@dataclass
class AppParts:
    agent: Agent
    notices: list[str] = field(default_factory=list)
    """Lines for people about what runs (policy, generator fallbacks)."""


def build_app_parts(settings: Settings) -> AppParts:
    from pasta.app.recorder import SessionRecorder
    from pasta.app.zerogpu import on_gpu, spaces_available
    from pasta.components import make_candidate_generator, make_embedder, make_text_to_image
    from pasta.logbook import LogStore
    from pasta.policy.loader import load_policy

    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    store = LogStore(settings.log_db)  # first: a bad log path fails before minutes of model loading
    log.info("loading models for the %s tier", settings.resolved_tier())
    notices = []
    embedder = make_embedder(settings)
    t2i = make_text_to_image(settings)
    try:
        generator = make_candidate_generator(settings)
    except FileNotFoundError as error:
        generator = make_candidate_generator(settings, "retrieval")
        notices.append(f"Candidates: retrieval generator ({error})")
        log.warning(notices[-1])
    if settings.prefetch:
        from pasta.candidates.prefetch import PrefetchingGenerator

        generator = PrefetchingGenerator(generator)
    loaded = load_policy(settings, embedder)
    notices.insert(0, loaded.notice)
    version = ""
    if loaded.version:
        version = f"agent-{loaded.version}"
        if not any(v["id"] == version for v in store.model_versions("agent")):
            store.record_model_version(
                "agent", loaded.policy.name, str(loaded.folder), metrics=loaded.metrics, version_id=version
            )
    recorder = SessionRecorder(store, settings.resolved_image_dir(), agent_version=version)
    # On ZeroGPU each call holds a GPU: render a turn in one call there, two columns at a time elsewhere.
    zero_gpu = spaces_available() and settings.resolved_tier() == "hub"
    agent = Agent(
        settings,
        embedder,
        t2i,
        generator,
        loaded.policy,
        recorder=recorder,
        columns_per_render=settings.slate_size if zero_gpu else 2,
        render_ahead=settings.render_ahead and not zero_gpu,
    )
    agent.render = on_gpu(agent.render)  # spaces.GPU where the `spaces` package is installed, else unchanged
    return AppParts(agent, notices)
