"""A co-creation session as values: its turns (candidates, slate, images, choice) and the progress steps an action
yields. All per-person state lives here, never in the agent, so concurrent sessions never see each other's state."""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from pasta.contracts import Candidate


@dataclass
class Turn:
    index: int
    prompt: str
    """The prompt this turn expanded (the initial prompt, or the one chosen in the turn before)."""
    candidates: list[Candidate]
    slate: list[int]
    """Indices into `candidates` shown as columns, left to right."""
    scores: list[float]
    """The policy's score (Q-value for the trained agent) of every candidate: why this slate was chosen."""
    seeds: list[int]
    images: list[list[Image.Image]] = field(repr=False)
    choice: int | None = None
    """Chosen column (0-based), None until the person picks."""
    rating: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    policy: str = ""
    candidate_embeddings: np.ndarray | None = field(default=None, repr=False)
    """[N, D] text embeddings of every candidate (None without an embedder)."""
    image_embeddings: np.ndarray | None = field(default=None, repr=False)
    """[L, M, D] embeddings of the rendered images, per column (None without an embedder)."""
    posterior: np.ndarray | None = None
    """The user-type posterior this slate was chosen under (None without a user model)."""
    refused: list[Candidate] = field(default_factory=list)
    """Candidates the safety filter removed before the policy saw them."""
    image_paths: list[list[str]] | None = None
    """Where the recorder saved the images (None when the session is not logged)."""
    shown_at: float = 0.0

    @property
    def slate_prompts(self) -> list[Candidate]:
        return [self.candidates[i] for i in self.slate]

    @property
    def chosen(self) -> Candidate | None:
        return None if self.choice is None else self.candidates[self.slate[self.choice]]

    def column_features(self) -> np.ndarray | None:
        """[L, 2D]: each column's prompt embedding and mean image embedding (`pasta.policy.user_model.column_features`)."""
        if self.candidate_embeddings is None or self.image_embeddings is None:
            return None
        from pasta.policy.user_model import column_features

        return column_features(self.candidate_embeddings[self.slate], self.image_embeddings)


@dataclass
class Session:
    initial_prompt: str
    seed: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    turns: list[Turn] = field(default_factory=list)
    consent: bool = False
    """The person opted in to logging: only then is anything of the session written to the log store."""
    max_turns: int = 5
    """H: the session ends after this many picks; `continue_steps` extends it."""
    branch_of: tuple[str, int] | None = None
    """(session id, turn index) this session was branched from."""
    favourites: list[tuple[int, int, int | None]] = field(default_factory=list)
    """(turn index, column, image index or None for the whole column)."""
    initial_embedding: np.ndarray | None = field(default=None, repr=False)
    pending: Turn | None = field(default=None, repr=False)
    """A turn whose slate was chosen (and logged) but whose images were not all rendered: the next action that
    computes a turn renders this one again instead of proposing another."""
    resume_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False, compare=False)
    """The secret (256 bits) that resuming this session asks for besides its id. The id is shown and exported; the
    token stays in the person's browser state and the log store keeps only its digest: never shown, logged or
    exported."""
    ahead: dict = field(default_factory=dict, repr=False, compare=False)
    """(turn index, column) -> `pasta.ahead.Ahead`: the next turn a pick of that column of the slate on screen
    would lead to, chosen (and rendered, as far as it got) while the person looked; not logged until it is used."""
    _busy: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def history(self) -> list[str]:
        """Initial prompt, then the prompt chosen in each finished turn."""
        return [self.initial_prompt] + [t.chosen.text for t in self.turns if t.chosen is not None]

    @property
    def current(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    @property
    def awaiting_pick(self) -> bool:
        return self.current is not None and self.current.choice is None

    @property
    def finished(self) -> bool:
        return self.current is not None and self.current.choice is not None and len(self.turns) >= self.max_turns


@dataclass
class Step:
    """Progress of one action: `stage` is "proposed" (slate chosen, nothing rendered), "column" (one more column
    rendered), "done" (the turn is complete and logged) or "finished" (the last pick of the session)."""

    session: Session
    turn: Turn | None
    stage: str
    fraction: float
    message: str
    columns_ready: int = 0
