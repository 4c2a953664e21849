"""Which slate policy the app uses: the trained PASTA agent when it is there and fits, else the LMM-order baseline.

The trained agent is two folders under `Settings.agent_dir` (default models/embedded/agent):
`qnet/` (`TwinQ.save`) and `user_model/` (`UserModel.save`), each in the small models' layout (`pasta.weights`). They must agree with
each other and with the embedder: the Q-network's embedding size is the embedder's, the user model scores column
features of twice that size, and both have the same number of user types. Anything missing or mismatched falls
back to `LMMOrderPolicy` with a notice that says why, logged and shown in the app, never a crash.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from pasta.config import Settings
from pasta.paths import EMBEDDED_DIR
from pasta.policy.slate import LMMOrderPolicy, QPolicy, SlatePolicy
from pasta.weights import weights_files

log = logging.getLogger(__name__)

DEFAULT_AGENT_DIR = EMBEDDED_DIR / "agent"


@dataclass
class LoadedPolicy:
    policy: SlatePolicy
    folder: Path
    notice: str
    """One line for people: which policy runs and, for the baseline, why."""
    version: str = ""
    """sha256 (first 16 hex digits) of the agent's weights; empty for the baseline."""
    metrics: dict | None = None


def _shown(path: Path) -> str:
    """A path as people read it: relative to the working directory when inside it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def agent_folder(settings: Settings) -> Path:
    return Path(settings.agent_dir).expanduser() if settings.agent_dir else DEFAULT_AGENT_DIR


def load_policy(settings: Settings, embedder) -> LoadedPolicy:
    folder = agent_folder(settings)
    try:
        policy, version, metrics = _load_q_policy(folder, embedder, settings.session_estimate)
    except Exception as error:  # missing, mismatched or corrupt files: the app still runs, on the baseline
        notice = f"Slate policy: LMM order (baseline), because the trained agent could not be used: {error}"
        log.warning(notice)
        return LoadedPolicy(LMMOrderPolicy(), folder, notice)
    estimate = " + each session's own estimate" if policy.adapt or policy.explore else ""
    notice = (
        f"Slate policy: the trained PASTA agent (Q-network + {policy.q.config.n_types} user types{estimate}, "
        f"{_shown(folder)})"
    )
    log.info(notice)
    return LoadedPolicy(policy, folder, notice, version, metrics)


def _load_q_policy(folder: Path, embedder, session_estimate: bool = True) -> tuple[QPolicy, str, dict]:
    import json

    from pasta.policy.iql import TwinQ
    from pasta.policy.session_estimate import EXPLORE_STRENGTH, SESSION_STRENGTH
    from pasta.policy.user_model import UserModel

    q_dir, user_dir = folder / "qnet", folder / "user_model"
    files = {}
    for path, legacy, what in ((q_dir, "qnet", "Q-network"), (user_dir, "user_model", "user model")):
        files[legacy] = weights_files(path, legacy)
        if files[legacy] is None:
            raise FileNotFoundError(f"no {what} in {_shown(path)}")
    if embedder is None:
        raise ValueError("the trained agent needs an embedder, and none was given")
    q, user_model = TwinQ.load(q_dir), UserModel.load(user_dir)
    c = q.config
    if c.embedding_dim != embedder.dim:
        raise ValueError(
            f"the Q-network was trained on {c.embedding_dim}-d embeddings but the embedder makes "
            f"{embedder.dim}-d ones (train an agent for this tier)"
        )
    if user_model.n_features != 2 * c.embedding_dim:
        raise ValueError(f"the user model takes {user_model.n_features} features, not 2 x {c.embedding_dim}")
    if user_model.config.n_types != c.n_types:
        raise ValueError(
            f"the Q-network expects {c.n_types} user types but the user model has {user_model.config.n_types}"
        )
    digest = hashlib.sha256()
    for weights, _ in files.values():
        digest.update(weights.read_bytes())
    metrics = {name: json.loads(config.read_text()).get("metrics", {}) for name, (_, config) in files.items()}
    strengths = (SESSION_STRENGTH, EXPLORE_STRENGTH) if session_estimate else (0.0, 0.0)
    return QPolicy(q, user_model, adapt=strengths[0], explore=strengths[1]), digest.hexdigest()[:16], metrics
