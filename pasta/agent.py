"""The PASTA loop: propose candidates, pick a slate, render it, take the person's choice, repeat.

The agent holds the (shared, read-only) models; all per-person state lives in a `Session` value that the
caller keeps (the app keeps one per browser), so concurrent sessions never see each other's state.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from pasta.candidates import MAX_INPUT_CHARS
from pasta.config import Settings
from pasta.contracts import Candidate
from pasta.slate import LMMOrderPolicy, SlatePolicy


class InputError(ValueError):
    """The person's input cannot be used; the message says why and what would work."""


@dataclass
class Turn:
    index: int
    prompt: str
    """The prompt this turn expanded (the initial prompt, or the one chosen in the turn before)."""
    candidates: list[Candidate]
    slate: list[int]
    """Indices into `candidates` shown as columns, left to right."""
    scores: list[float]
    """The policy's score for every candidate."""
    seeds: list[int]
    images: list[list[Image.Image]] = field(repr=False)
    choice: int | None = None
    """Chosen column (0-based), None until the person picks."""
    rating: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def slate_prompts(self) -> list[Candidate]:
        return [self.candidates[i] for i in self.slate]


@dataclass
class Session:
    initial_prompt: str
    seed: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    turns: list[Turn] = field(default_factory=list)

    def history(self) -> list[str]:
        """Initial prompt, then the prompt chosen in each finished turn."""
        out = [self.initial_prompt]
        out += [t.slate_prompts[t.choice].text for t in self.turns if t.choice is not None]
        return out

    @property
    def current(self) -> Turn | None:
        return self.turns[-1] if self.turns else None


def check_prompt(prompt: object) -> str:
    if not isinstance(prompt, str):
        raise InputError(f"the prompt must be text, not {type(prompt).__name__}")
    prompt = " ".join(prompt.split())
    if not prompt:
        raise InputError("the prompt is empty: describe what you would like to see, e.g. 'a red dress'")
    if len(prompt) > MAX_INPUT_CHARS:
        raise InputError(f"the prompt has {len(prompt)} characters; keep it under {MAX_INPUT_CHARS}")
    return prompt


class Agent:
    def __init__(self, settings: Settings, embedder, text_to_image, generator, policy: SlatePolicy | None = None):
        self.settings = settings
        self.embedder = embedder
        self.t2i = text_to_image
        self.generator = generator
        self.policy = policy or LMMOrderPolicy()

    def start(self, prompt: str, seed: int | None = None, progress: Callable[[float, str], None] | None = None):
        prompt = check_prompt(prompt)
        seed = int(np.random.default_rng().integers(2**31)) if seed is None else int(seed)
        session = Session(prompt, seed)
        self._next_turn(session, progress)
        return session

    def pick(self, session: Session, column: int, rating: int | None = None,
             progress: Callable[[float, str], None] | None = None) -> Session:
        turn = session.current
        if turn is None:
            raise InputError("there is no slate to pick from yet: start with a prompt")
        if not isinstance(column, int) or not 0 <= column < len(turn.slate):
            raise InputError(f"column must be a number from 1 to {len(turn.slate)}")
        if rating is not None and rating not in (1, 2, 3, 4, 5):
            raise InputError("a rating must be 1, 2, 3, 4 or 5")
        turn.choice, turn.rating = column, rating
        if len(session.turns) < self.settings.turns:
            self._next_turn(session, progress)
        return session

    def state(self, session: Session) -> dict:
        return {"history": session.history(), "turn": len(session.turns), "seed": session.seed}

    def _next_turn(self, session: Session, progress=None) -> Turn:
        report = progress or (lambda fraction, message: None)
        history = session.history()
        t0 = time.perf_counter()
        report(0.05, "proposing prompt expansions")
        candidates = self.generator.propose(history, n=self.settings.n_candidates)
        t1 = time.perf_counter()
        slate, scores = self.policy.select(self.state(session), candidates, self.settings.slate_size)
        t2 = time.perf_counter()
        report(0.35, "rendering images")
        seeds = [session.seed * 10 + column for column in range(len(slate))]  # fixed per column for the session
        images = self.t2i.generate([candidates[i].text for i in slate], seeds, self.settings.images_per_prompt)
        t3 = time.perf_counter()
        turn = Turn(len(session.turns), history[-1], candidates, slate, [float(s) for s in scores], seeds, images,
                    timings={"propose": t1 - t0, "select": t2 - t1, "render": t3 - t2})
        session.turns.append(turn)
        report(1.0, "done")
        return turn
