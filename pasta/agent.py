"""The PASTA loop: propose candidates, pick a slate, render it, take the person's choice, repeat.

The agent holds the (shared, read-only) models; all per-person state lives in a `Session` value that the
caller keeps (the app keeps one per browser), so concurrent sessions never see each other's state.

One turn, as the paper draws it:

    history -> generator.propose (L_C = 25 candidates) -> safety filter -> embedder.text (once per turn)
            -> policy.select (Q per candidate, at most one per category, L = 4) -> render M = 4 images per column
            -> embedder.image -> recorder.on_turn (log store, before the slate can be picked)

`start_steps`/`pick_steps`/`continue_steps` yield a `Step` after each stage, so a UI can show progress and the
columns as they render; `start`/`pick` run the same steps to the end. A `recorder` (pasta.app.recorder) makes every
slate and choice durable in the log store before the next turn is computed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image

from pasta import ahead
from pasta.candidates.prefetch import PrefetchingGenerator
from pasta.config import Settings
from pasta.contracts import Candidate
from pasta.inputs import InputError, RefusedError, check_prompt, check_rating
from pasta.policy.slate import LMMOrderPolicy, SlatePolicy
from pasta.policy.state import PolicyState, ShownSlate
from pasta.safety import SafetyFilter
from pasta.session import Session, Step, Turn

log = logging.getLogger(__name__)


class Agent:
    def __init__(
        self,
        settings: Settings,
        embedder,
        text_to_image,
        generator,
        policy: SlatePolicy | None = None,
        *,
        safety: SafetyFilter | None = None,
        recorder=None,
        columns_per_render: int = 2,
        render_ahead: bool = False,
    ) -> None:
        """`recorder` (pasta.app.recorder.SessionRecorder or None) logs what consenting sessions see and choose;
        `columns_per_render`: columns rendered in one batch, each batch streamed to the page as it finishes. Two
        on a CPU: a batch renders an image faster than one column alone (measured on 2 cores, 16 images: one
        column at a time 4.2 s, first images after 1.0 s; two at a time 2.6 s, first after 1.3 s; all at once
        2.5 s); the slate size for one GPU call (ZeroGPU). `render_ahead`: choose and render each column's next
        turn while the person looks (`pasta.ahead`; the app's `render_ahead` setting)."""
        if columns_per_render < 1:
            raise ValueError(f"columns_per_render must be at least 1, got {columns_per_render}")
        self.settings = settings
        self.embedder = embedder
        self.t2i = text_to_image
        self.generator = generator
        self.policy = policy or LMMOrderPolicy()
        self.safety = safety or SafetyFilter()
        self.recorder = recorder
        self.columns_per_render = columns_per_render
        self.render_ahead = render_ahead
        self.render = self._render
        """Renders (prompts, seeds) -> images; the app wraps it for ZeroGPU (pasta.app.zerogpu)."""

    @property
    def user_model(self):
        return getattr(self.policy, "user_model", None)

    # -- actions -------------------------------------------------------------------------------------------------

    def start(
        self,
        prompt: str,
        seed: int | None = None,
        progress: Callable[[float, str], None] | None = None,
        *,
        consent: bool = False,
    ) -> Session:
        return _drain(self.start_steps(prompt, seed, consent=consent), progress)

    def pick(
        self,
        session: Session,
        column: int,
        rating: int | None = None,
        progress: Callable[[float, str], None] | None = None,
    ) -> Session:
        return _drain(self.pick_steps(session, column, rating), progress)

    def start_steps(self, prompt: str, seed: int | None = None, *, consent: bool = False) -> Iterator[Step]:
        prompt = self.check_safe(prompt)
        seed = int(np.random.default_rng().integers(2**31)) if seed is None else int(seed)
        session = Session(prompt, seed, consent=bool(consent), max_turns=self.settings.turns)
        if self.embedder is not None:
            session.initial_embedding = self.embedder.text([prompt])[0]
        with self._busy(session):
            yield from self._turn_steps(session)  # the log's session row comes with its first slate

    def check_safe(self, prompt: object, session_id: str | None = None) -> str:
        """check_prompt, then the safety filter; a refusal is logged and raised as RefusedError."""
        prompt = check_prompt(prompt)
        verdict = self.safety.check(prompt)
        if not verdict.allowed:
            if self.recorder is not None:
                self.recorder.on_refusal(prompt, f"prompt {verdict.reason}", session_id)
            raise RefusedError(verdict.message)
        return prompt

    def pick_steps(self, session: Session, column: int, rating: int | None = None) -> Iterator[Step]:
        with self._busy(session):
            turn = session.current
            if turn is None:
                raise InputError("there is no slate to pick from yet: start with a prompt")
            if turn.choice is not None:
                raise InputError(
                    f"turn {turn.index + 1} already has a pick (column {turn.choice + 1}); "
                    "go back to it to choose differently"
                )
            if (
                isinstance(column, bool)
                or not isinstance(column, (int, np.integer))
                or not 0 <= column < len(turn.slate)
            ):
                raise InputError(f"column must be a number from 1 to {len(turn.slate)}")
            rating = check_rating(rating)
            turn.choice, turn.rating = int(column), rating
            try:
                if self.recorder is not None:  # durable before the next slate is computed
                    self.recorder.on_choice(session, turn, time.time() - turn.shown_at if turn.shown_at else None)
            except BaseException:
                turn.choice, turn.rating = None, None
                raise
            if isinstance(self.generator, PrefetchingGenerator):  # the other columns' proposals are not needed
                history = session.history()[:-1]
                self.generator.forget(
                    [history + [c.text] for k, c in enumerate(turn.slate_prompts) if k != column],
                    self.settings.n_candidates,
                )
            if len(session.turns) < session.max_turns:
                yield from self._turn_steps(session)
            else:
                yield Step(session, turn, "finished", 1.0, "session finished", len(turn.slate))

    def continue_steps(self, session: Session, turns: int | None = None) -> Iterator[Step]:
        """Extend a finished session by `turns` more (default: the setting's H) and compute the next slate; or,
        when a pick's next slate was never completed (the page closed while it rendered), compute it now."""
        with self._busy(session):
            if session.current is None or session.awaiting_pick:
                raise InputError("there is a slate waiting for your pick: pick a column first")
            if session.finished:
                session.max_turns += turns or self.settings.turns
            yield from self._turn_steps(session)

    def rate(self, session: Session, turn_index: int, rating: int) -> None:
        """Rate (or re-rate) the column picked in a turn, 1-5."""
        rating = check_rating(rating)
        if rating is None:
            raise InputError("a rating must be 1, 2, 3, 4 or 5")
        turn = self._turn(session, turn_index)
        if turn.choice is None:
            raise InputError(f"turn {turn_index + 1} has no pick yet: pick a column, then rate it")
        previous, turn.rating = turn.rating, rating
        try:
            if self.recorder is not None:
                self.recorder.on_rating(session, turn)
        except BaseException:
            turn.rating = previous
            raise

    def branch(self, session: Session, turn_index: int) -> Session:
        """A new session that shares turns 0..turn_index with `session`, with turn `turn_index` open for a
        different pick; the original is kept unchanged (logged choices are final)."""
        with self._busy(session):
            self._turn(session, turn_index)
            turns = [dataclasses.replace(t) for t in session.turns[: turn_index + 1]]
            turns[-1].choice, turns[-1].rating, turns[-1].shown_at = None, None, time.time()
            new = Session(
                session.initial_prompt,
                session.seed,
                turns=turns,
                consent=session.consent,
                max_turns=max(session.max_turns, turn_index + 1),
                branch_of=(session.id, turn_index),
                favourites=[f for f in session.favourites if f[0] <= turn_index],
                initial_embedding=session.initial_embedding,
            )
            if self.recorder is not None:
                self.recorder.on_branch(new, self.describe())
            return new

    def toggle_favourite(self, session: Session, turn_index: int, column: int, image: int | None = None) -> bool:
        """Mark (or unmark) a column, or one image of it, as a favourite; True when it is now a favourite."""
        turn = self._turn(session, turn_index)
        if isinstance(column, bool) or not isinstance(column, (int, np.integer)) or not 0 <= column < len(turn.slate):
            raise InputError(f"column must be a number from 1 to {len(turn.slate)}")
        if image is not None and not 0 <= image < len(turn.images[column]):
            raise InputError(f"image must be a number from 1 to {len(turn.images[column])}")
        key = (int(turn_index), int(column), None if image is None else int(image))
        favourite = key not in session.favourites
        if self.recorder is not None:
            self.recorder.on_favourite(session, key, favourite)
        if favourite:
            session.favourites.append(key)
        else:
            session.favourites.remove(key)
        return favourite

    def resume(self, session_id: str, resume_token: str | None, *, from_browser: bool = False) -> Session:
        """A logged session, rebuilt from the log store (after a server restart, say): prompts, seeds, picks and
        ratings from the log, images from their saved files (re-rendered from their seeds if a file is gone).

        The id alone is not enough: `resume_token` must be the session's token. A session logged before tokens
        existed has none; it opens only `from_browser` (the browser that holds its id in its own state) and gets a
        token then, which the caller gives back to that browser (`Session.resume_token`)."""
        if self.recorder is None:
            raise InputError("this app keeps no log, so there is nothing to resume")
        session = self.recorder.load_session(session_id, resume_token, self, from_browser=from_browser)
        session.max_turns = max(session.max_turns, len(session.turns))
        return session

    # -- the policy's view ---------------------------------------------------------------------------------------

    def state(
        self,
        session: Session,
        candidate_embeddings: np.ndarray | None = None,
        candidates: list[Candidate] | None = None,
    ) -> PolicyState:
        """What a slate policy sees (`PolicyState.build`; embeddings only with an embedder)."""
        done = [t for t in session.turns if t.choice is not None and t.image_embeddings is not None]
        initial = session.initial_embedding if self.embedder is not None else None
        shown = [ShownSlate.of(t.candidate_embeddings[t.slate], t.image_embeddings, t.choice) for t in done]
        return PolicyState.build(
            initial,
            shown if initial is not None else [],
            seed=session.seed,
            turn=len(session.turns),
            turns=session.max_turns,
            history=session.history(),
            candidate_embeddings=candidate_embeddings,
            candidate_categories=None if candidates is None else [c.category for c in candidates],
        )

    def posterior(self, session: Session) -> np.ndarray | None:
        """[K] the user-type posterior after the session's picks so far (None without a user model)."""
        if self.user_model is None or self.embedder is None:
            return None
        from pasta.policy.slate import posterior_from_state

        return np.asarray(posterior_from_state(self.user_model, self.state(session)), np.float32)

    def session_taste(self, session: Session | None):
        """`SessionTaste`: what the policy's session estimates read from the picks so far, with the current turn's
        candidates as the ones they may favour (no session: before any); None where the policy has none (or there
        is no user model)."""
        adapt, explore = (float(getattr(self.policy, name, 0.0)) for name in ("adapt", "explore"))
        if self.user_model is None or self.embedder is None or not (adapt or explore):
            return None
        from pasta.policy.session_estimate import SessionTaste, session_taste
        from pasta.policy.slate import posterior_from_state

        if session is None:
            return SessionTaste(picks=0, types_explain=0.5, nearness=0.0, favoured=())
        turn = session.current if session.awaiting_pick else None  # a finished session has no candidates left
        embeddings = turn.candidate_embeddings if turn is not None else None
        state = self.state(session, embeddings, turn.candidates if embeddings is not None else None)
        return session_taste(self.user_model, state, posterior_from_state(self.user_model, state), adapt, explore)

    def describe(self) -> dict:
        """What produced a session's slates, stored with it in the log."""
        return {
            "policy": getattr(self.policy, "name", type(self.policy).__name__),
            "generator": getattr(self.generator, "name", type(self.generator).__name__),
            "text_to_image": getattr(self.t2i, "name", type(self.t2i).__name__),
            "adapter": getattr(self.t2i, "adapter", None) or "",
            "embedder": getattr(self.embedder, "name", "") if self.embedder is not None else "",
            "n_candidates": self.settings.n_candidates,
            "slate_size": self.settings.slate_size,
            "images_per_prompt": self.settings.images_per_prompt,
            "turns": self.settings.turns,
        }

    # -- one turn ------------------------------------------------------------------------------------------------

    def _turn_steps(self, session: Session) -> Iterator[Step]:
        t0 = time.perf_counter()
        turn = session.pending
        if turn is not None and turn.index == len(session.turns):
            turn.images = [[] for _ in turn.slate]  # logged and shown, then rendering stopped (the page closed)
        else:
            entry = ahead.take(session)  # the turn chosen (and perhaps rendered) while the person looked
            try:
                turn, refusals = (entry.turn, entry.refusals) if entry is not None else self.choose_turn(session)
            except RefusedError as error:
                self._log_refusals(session, error.refusals)
                raise
            self._commit_slate(session, turn, refusals)
            session.pending = turn
        slate = turn.slate
        yield Step(session, turn, "proposed", 0.2, "slate chosen, rendering images")
        t2 = time.perf_counter()
        for group in self.column_groups(turn):
            self.render_columns(turn, group)
            yield Step(
                session,
                turn,
                "column",
                0.2 + 0.75 * (group[-1] + 1) / len(slate),
                f"rendered {group[-1] + 1} of {len(slate)} columns",
                group[-1] + 1,
            )
        t3 = time.perf_counter()
        if self.embedder is not None:
            flat = [image for column in turn.images for image in column]
            turn.image_embeddings = self.embedder.image(flat).reshape(len(slate), -1, self.embedder.dim)
        turn.timings.update(render=t3 - t2, embed_images=time.perf_counter() - t3)
        if self.recorder is not None:  # the images' files and embeddings, before the slate can be picked
            self.recorder.on_images(session, turn)
        turn.shown_at = time.time()
        session.turns.append(turn)
        session.pending = None
        turn.timings["total"] = time.perf_counter() - t0
        self._prefetch_next(session, turn)
        yield Step(session, turn, "done", 1.0, "slate ready", len(slate))

    def choose_turn(self, session: Session) -> tuple[Turn, list[tuple[str, str]]]:
        """The next turn's candidates and slate, nothing rendered and nothing logged yet, with the safety filter's
        refusals as (candidate text, reason)."""
        s = self.settings
        history = session.history()
        t0 = time.perf_counter()
        hits = getattr(self.generator, "hits", 0)
        proposed = self.generator.propose(history, n=s.n_candidates)
        candidates, refused, refusals = [], [], []
        for c in proposed:
            verdict = self.safety.check(c.text)
            if verdict.allowed:
                candidates.append(c)
            else:
                refused.append(c)
                refusals.append((c.text, f"candidate ({c.category}) {verdict.reason}"))
        if not candidates:
            raise RefusedError(
                "Sorry, I could not find safe ways to develop this prompt. Please try another idea.", refusals
            )
        t1 = time.perf_counter()
        embeddings = None if self.embedder is None else self.embedder.text([c.text for c in candidates])
        slate, scores = self.policy.select(self.state(session, embeddings, candidates), candidates, s.slate_size)
        t2 = time.perf_counter()
        seeds = [session.seed * 10 + column for column in range(len(slate))]  # fixed per column for the session
        turn = Turn(
            len(session.turns),
            history[-1],
            candidates,
            [int(i) for i in slate],
            [float(x) for x in scores],
            seeds,
            [[] for _ in slate],
            policy=getattr(self.policy, "name", ""),
            candidate_embeddings=embeddings,
            posterior=self.posterior(session),
            refused=refused,
            timings={
                "propose": t1 - t0,
                "select": t2 - t1,
                "proposed_ahead": float(getattr(self.generator, "hits", 0) > hits),
            },
        )
        return turn, refusals

    def _commit_slate(self, session: Session, turn: Turn, refusals: list[tuple[str, str]]) -> None:
        """Log a chosen slate (for a consenting session) before anyone sees it: a restart resumes exactly it."""
        self._log_refusals(session, refusals)
        if self.recorder is not None:
            self.recorder.on_slate(session, turn, self.describe())

    def _log_refusals(self, session: Session, refusals: list[tuple[str, str]]) -> None:
        if self.recorder is not None:
            for text, reason in refusals:
                self.recorder.on_refusal(text, reason, session.id)

    def _prefetch_next(self, session: Session, turn: Turn) -> None:
        """While the person decides, work ahead on each column's next turn (`pasta.ahead`)."""
        if len(session.turns) < session.max_turns:
            ahead.schedule(self, session, turn)

    def prefetch_histories(self, histories: list[list[str]]) -> None:
        """Queue candidate proposals for these histories (likeliest first) with a `PrefetchingGenerator`."""
        if isinstance(self.generator, PrefetchingGenerator):
            self.generator.prefetch(histories, self.settings.n_candidates)

    def column_groups(self, turn: Turn) -> list[range]:
        """The slate's columns in the batches they render in (`columns_per_render` at a time)."""
        n, size = len(turn.slate), self.columns_per_render
        return [range(start, min(start + size, n)) for start in range(0, n, size)]

    def render_columns(self, turn: Turn, group: range) -> None:
        """Render, in one batch, the columns of `group` that have no images yet (a turn rendered ahead may)."""
        missing = [c for c in group if not turn.images[c]]
        if missing:
            prompts = [turn.slate_prompts[c].text for c in missing]
            for column, images in zip(missing, self.render(prompts, [turn.seeds[c] for c in missing]), strict=True):
                turn.images[column] = images

    def _render(self, prompts: list[str], seeds: list[int]) -> list[list[Image.Image]]:
        return self.t2i.generate(prompts, seeds, self.settings.images_per_prompt)

    @staticmethod
    def _turn(session: Session, turn_index: object) -> Turn:
        if (
            isinstance(turn_index, bool)
            or not isinstance(turn_index, (int, np.integer))
            or not (0 <= turn_index < len(session.turns))
        ):
            raise InputError(
                f"turn must be a number from 1 to {len(session.turns)}"
                if session.turns
                else "there are no turns yet: start with a prompt"
            )
        return session.turns[int(turn_index)]

    @staticmethod
    @contextmanager
    def _busy(session: Session):
        """One action at a time per session: a second click while a slate renders gets a clear message."""
        if not session._busy.acquire(blocking=False):
            raise InputError("still working on your last request: wait for the slate to finish")
        try:
            yield
        finally:
            session._busy.release()


def _drain(steps: Iterator[Step], progress: Callable[[float, str], None] | None) -> Session:
    session = None
    for step in steps:
        if progress is not None:
            progress(step.fraction, step.message)
        session = step.session
    return session
