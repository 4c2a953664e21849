"""What a slate policy sees before it picks a slate, built in one place for the live agent, the simulator and IQL.

A finished turn is remembered as a `ShownSlate`: the embeddings of the columns that were shown and the one that
was picked. From the session's first prompt and its shown slates, `PolicyState.build` derives the rest: the current
prompt (the chosen column's), the images picked so far, the columns' features for the user model's posterior. Where
the three callers differ is only where the embeddings come from (the embedder in the app, the world's table in the
simulator, the log store in training), never how the state is made of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pasta.policy.user_model import column_features


@dataclass(frozen=True)
class ShownSlate:
    """One finished turn as a policy remembers it."""

    text_embeddings: np.ndarray
    """[L, D]: each column's prompt embedding."""
    image_embeddings: np.ndarray
    """[L, M, D]: each column's image embeddings (M = 1 where only their mean, or the prompt's own embedding in
    embedding-level simulation, is known)."""
    choice: int
    """The column the person picked."""

    @classmethod
    def of(cls, text_embeddings: np.ndarray, image_embeddings: np.ndarray | None, choice: int) -> ShownSlate:
        """`image_embeddings` may be [L, M, D], [L, D] (means) or None (the prompts stand in for their images)."""
        text = np.asarray(text_embeddings, np.float32)
        images = text if image_embeddings is None else np.asarray(image_embeddings, np.float32)
        if images.ndim == 2:
            images = images[:, None, :]
        if images.ndim != 3 or len(images) != len(text) or images.shape[2] != text.shape[1]:
            raise ValueError(f"image embeddings {images.shape} do not match text embeddings {text.shape}")
        if not 0 <= int(choice) < len(text):
            raise ValueError(f"choice {choice} is not a column of a slate of {len(text)}")
        return cls(text, images, int(choice))

    def column_features(self) -> np.ndarray:
        """[L, 2D]: the user model's features of each column (`pasta.policy.user_model.column_features`)."""
        return column_features(self.text_embeddings, self.image_embeddings)


@dataclass
class PolicyState:
    """The state a `SlatePolicy.select` reads. Embedding fields are None when the agent runs without an embedder."""

    turn: int
    """Turns already shown in this session (0 before the first slate)."""
    seed: int
    turns: int | None = None
    """Turns the session has in all, its last turn being `turns - 1` (None: not known)."""
    history: list[str] = field(default_factory=list)
    """The prompts so far, first to current (the live agent's; the simulator works on embeddings only)."""
    initial_embedding: np.ndarray | None = None
    current_embedding: np.ndarray | None = None
    """The prompt being expanded: the initial one, then each turn's chosen column."""
    chosen_image_embeddings: np.ndarray | None = None
    """[n_chosen, D]: the mean image embedding of each chosen column."""
    history_slates: list[tuple[np.ndarray, int]] = field(default_factory=list)
    """(column features [L, 2D], choice) per finished turn: what the user model's posterior over types reads."""
    candidate_embeddings: np.ndarray | None = None
    """[N, D]: this turn's candidates."""
    candidate_categories: list[str] | None = None
    planted_utilities: np.ndarray | None = None
    """[N]: the simulated user's true utility of each candidate. The simulator's secret: only oracles read it."""
    planted_temperature: float | None = None

    @classmethod
    def build(
        cls,
        initial_embedding: np.ndarray | None,
        shown: Sequence[ShownSlate],
        *,
        seed: int,
        turn: int | None = None,
        turns: int | None = None,
        history: Sequence[str] = (),
        candidate_embeddings: np.ndarray | None = None,
        candidate_categories: Sequence[str] | None = None,
        **secrets: object,
    ) -> PolicyState:
        """The state after the turns in `shown` (`turn` defaults to their number)."""
        turn = len(shown) if turn is None else int(turn)
        state = cls(
            turn,
            int(seed),
            None if turns is None else int(turns),
            list(history),
            candidate_categories=None if candidate_categories is None else list(candidate_categories),
            candidate_embeddings=candidate_embeddings,
            **secrets,
        )
        if initial_embedding is None:
            return state
        initial = np.asarray(initial_embedding, np.float32)
        last = shown[-1] if shown else None
        state.initial_embedding = initial
        state.current_embedding = initial if last is None else last.text_embeddings[last.choice]
        state.chosen_image_embeddings = (
            np.stack([s.image_embeddings[s.choice].mean(0) for s in shown])
            if shown
            else np.zeros((0, len(initial)), np.float32)
        ).astype(np.float32)
        state.history_slates = [(s.column_features(), s.choice) for s in shown]
        return state
