"""The app's memory: what each consenting session was shown and chose, in the log store, and the images on disk.

The agent calls the recorder at fixed points of the loop, so the log store's ordering contract holds by
construction: `on_slate` commits a slate (candidates, Q-scores, seeds) before it reaches the screen, `on_images`
adds its image files and embeddings once rendered, `on_choice` commits the pick before the next slate is computed.
A session's row is written with its first slate, so a start that fails leaves nothing behind. Only sessions whose
person opted in (`Session.consent`) are written; refusals of the safety filter are always logged (without them nobody could audit
the filter), with the refused text only.

`load_session` rebuilds a session from the log after a server restart: nothing that was shown is lost.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image

from pasta.contracts import Candidate
from pasta.logbook import LogStore

log = logging.getLogger(__name__)

_SESSION_ID = re.compile(r"^[0-9a-f]{32}$")


class SessionRecorder:
    def __init__(self, store: LogStore, image_dir: str | Path, agent_version: str = "") -> None:
        self.store = store
        self.image_dir = Path(image_dir).expanduser().absolute()
        self.agent_version = agent_version
        """Id of the slate agent's `model_versions` row, stored with every session (empty for a baseline)."""

    # -- the loop's hooks ----------------------------------------------------------------------------------------

    def on_start(self, session, describe: dict) -> None:
        if session.consent:
            self.store.start_session(
                session.initial_prompt,
                session.seed,
                consent=True,
                source="app",
                settings=self._settings(session, describe),
                session_id=session.id,
                resume_token=session.resume_token,
            )

    def on_slate(self, session, turn, describe: dict) -> None:
        """The slate's prompts, scores and seeds, before it is rendered or shown (and the session, with its first)."""
        if not session.consent:
            return
        if turn.index == 0:
            self.on_start(session, describe)
        self.store.log_turn(session.id, turn.index, turn.prompt, turn.candidates, turn.scores, turn.slate, turn.seeds)

    def on_images(self, session, turn) -> None:
        """The rendered images' files and embeddings, added to the slate `on_slate` logged."""
        if session.consent:
            self.store.log_slate_images(session.id, turn.index, *self._images(session, turn))

    def on_turn(self, session, turn) -> None:
        """A whole turn at once, images included (a branch copies the turns it shares)."""
        if session.consent:
            embeddings, paths = self._images(session, turn)
            self.store.log_turn(
                session.id,
                turn.index,
                turn.prompt,
                turn.candidates,
                turn.scores,
                turn.slate,
                turn.seeds,
                image_embeddings=embeddings,
                image_paths=paths,
            )

    def on_choice(self, session, turn, response_seconds: float | None = None) -> None:
        if session.consent:
            self.store.log_choice(session.id, turn.index, turn.choice, turn.rating, response_seconds)

    def on_rating(self, session, turn) -> None:
        if session.consent:
            self.store.rate(session.id, turn.index, turn.rating)

    def on_favourite(self, session, key: tuple[int, int, int | None], favourite: bool) -> None:
        if session.consent:
            self.store.set_favourite(session.id, *key, favourite)

    def on_refusal(self, text: str, reason: str, session_id: str | None = None) -> None:
        self.store.log_refusal(text, reason, session_id)

    def on_branch(self, session, describe: dict) -> None:
        """A branched session is a session of its own in the log: its shared turns again (same images), then the
        open turn; the session it came from stays as it was (logged choices are final)."""
        if not session.consent:
            return
        self.on_start(session, describe)
        for turn in session.turns:
            self.on_turn(session, turn)
            if turn.choice is not None:
                self.on_choice(session, turn)
        for key in session.favourites:
            self.on_favourite(session, key, True)

    # -- resuming ------------------------------------------------------------------------------------------------

    def load_session(self, session_id: str, resume_token: str | None, agent, *, from_browser: bool = False):
        """The logged session `session_id` as a live `Session` (see the module docstring), when `resume_token` is
        its token (see `Agent.resume`); otherwise an InputError that changes nothing."""
        from pasta.inputs import InputError
        from pasta.session import Session, Turn

        if not isinstance(session_id, str) or not _SESSION_ID.match(session_id.strip()):
            raise InputError("a session id is 32 hexadecimal characters, as shown under 'Session details'")
        session_id = session_id.strip()
        refused = InputError(
            f"session {session_id} cannot be resumed here: its resume code is missing or wrong "
            "(a session resumes in the browser that started it, or with its resume code)"
        )
        try:
            matches = self.store.resume_token_matches(session_id, resume_token)
        except KeyError:
            raise refused from None  # the same answer as a wrong code: ids of other sessions are not confirmed
        if matches is False or (matches is None and not from_browser):
            raise refused
        episode = self.store.episode(session_id)
        settings = episode.get("settings") or {}
        branch = settings.get("branch_of")
        session = Session(
            episode["initial_prompt"],
            int(episode["seed"]),
            id=episode["id"],
            consent=True,
            max_turns=int(settings.get("max_turns", agent.settings.turns)),
            branch_of=tuple(branch) if branch else None,
        )
        if matches:
            session.resume_token = resume_token
        else:  # logged before resume tokens: this browser held the id, and from now on it holds the token too
            self.store.set_resume_token(session.id, session.resume_token)
        if agent.embedder is not None:
            session.initial_embedding = agent.embedder.text([session.initial_prompt])[0]
        for logged in episode["turns"]:
            if not logged["slate"]:
                continue
            candidates = [Candidate(c["text"], c["category"], c.get("source", "")) for c in logged["candidates"]]
            slate = [s["candidate_idx"] for s in logged["slate"]]
            seeds = [int(s["seed"]) for s in logged["slate"]]
            paths = [s["image_paths"] for s in logged["slate"]]
            images = [self._load_images(p, candidates[i].text, seed, agent) for p, i, seed in zip(paths, slate, seeds)]
            logged_embeddings = [s["image_embeddings"] for s in logged["slate"]]
            image_embeddings = None
            if all(e is not None for e in logged_embeddings):
                image_embeddings = np.stack(logged_embeddings).astype(np.float32)
            elif agent.embedder is not None:
                flat = [image for column in images for image in column]
                image_embeddings = agent.embedder.image(flat).reshape(len(slate), -1, agent.embedder.dim)
            choice = logged["choice"] or {}
            turn = Turn(
                logged["turn_index"],
                logged["prompt"],
                candidates,
                slate,
                [float(c["score"]) if c["score"] is not None else 0.0 for c in logged["candidates"]],
                seeds,
                images,
                choice.get("column"),
                choice.get("rating"),
                policy=settings.get("policy", ""),
                image_embeddings=image_embeddings,
                image_paths=paths if all(p is not None for p in paths) else None,
            )
            if agent.embedder is not None:
                turn.candidate_embeddings = agent.embedder.text([c.text for c in candidates])
            turn.posterior = agent.posterior(session)  # the posterior before this turn's pick, as when it was shown
            if turn.image_paths is None:  # rendered again from its seeds (the server stopped while it rendered)
                self.on_images(session, turn)
            session.turns.append(turn)
        if not session.turns:
            raise InputError(f"session {session.id} has no logged slate to resume")
        session.favourites = [f for f in self.store.favourites(session.id) if f[0] < len(session.turns)]
        session.max_turns = max(session.max_turns, len(session.turns))
        return session

    # -- files ---------------------------------------------------------------------------------------------------

    def _images(self, session, turn) -> tuple[list | None, list[list[str]]]:
        """A turn's image embeddings (per column) and image files, saved once."""
        if turn.image_paths is None:
            turn.image_paths = self._save_images(session.id, turn)
        return None if turn.image_embeddings is None else list(turn.image_embeddings), turn.image_paths

    def _save_images(self, session_id: str, turn) -> list[list[str]]:
        folder = self.image_dir / session_id
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for column, images in enumerate(turn.images):
            column_paths = []
            for i, image in enumerate(images):
                path = folder / f"turn{turn.index + 1}_column{column + 1}_{i + 1}.png"
                tmp = path.with_name(path.name + ".tmp")
                image.save(tmp, format="PNG")
                tmp.replace(path)
                column_paths.append(str(path))
            paths.append(column_paths)
        return paths

    @staticmethod
    def _load_images(paths: list[str] | None, prompt: str, seed: int, agent) -> list[Image.Image]:
        try:
            if paths:
                out = []
                for p in paths:
                    with Image.open(p) as image:
                        out.append(image.convert("RGB"))
                return out
        except OSError as error:
            log.warning("re-rendering %r (seed %d): a saved image is unreadable (%s)", prompt, seed, error)
        return agent.render([prompt], [seed])[0]  # deterministic for (prompt, seed)

    def _settings(self, session, describe: dict) -> dict:
        out = {**describe, "max_turns": session.max_turns}
        if self.agent_version:
            out["agent_version"] = self.agent_version
        if session.branch_of is not None:
            out["branch_of"] = list(session.branch_of)
        return out
