"""What the app does when a person acts: every handler calls `pasta.agent.Agent` and answers with view updates
computed by `pasta.app.views` for the page's outputs (`pasta.app.layout.Page.view`). Errors people can act on
become a Gradio message naming the field; anything else is logged and reported without detail.

Handlers that touch the models run on the torch thread (`pasta.torch_thread.on_torch_thread`); turns stream a
view update after each stage of the agent's steps.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import gradio as gr

from pasta.app import views
from pasta.app.shown_images import ShownImages
from pasta.config import Settings
from pasta.inputs import InputError, RefusedError
from pasta.session import Session
from pasta.torch_thread import on_torch_thread

log = logging.getLogger(__name__)


@contextmanager
def user_errors():
    """Errors people can act on become a Gradio message; anything else is logged and reported without detail."""
    try:
        yield
    except RefusedError as error:
        raise gr.Error(str(error), title="Not something I can make") from None
    except InputError as error:
        raise gr.Error(str(error), title="Please check your input") from None
    except gr.Error:
        raise
    except Exception as error:
        log.exception("app action failed")
        raise gr.Error(
            f"Something went wrong on our side ({type(error).__name__}). What you saw so far is kept; please try again."
        ) from error


def number(value, name: str, low: int = 1) -> int:
    """A whole number from a UI or API field (1-based), or an InputError naming the field."""
    if value is None or isinstance(value, bool) or value != value:
        raise InputError(f"{name} is missing: give a whole number from {low}")
    if isinstance(value, str):
        value = value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a whole number, not {value!r}") from None
    if number != int(number) or number < low:
        raise InputError(f"{name} must be a whole number from {low}, not {value!r}")
    return int(number)


class Handlers:
    """The app's actions for one page; per-browser state arrives as each handler's `session` argument."""

    def __init__(self, settings: Settings, agent, world, notice: str, view_size: int) -> None:
        self.settings, self.agent, self.world, self.notice, self.view_size = settings, agent, world, notice, view_size
        self.L = settings.slate_size
        self.has_user_model = agent.user_model is not None and agent.embedder is not None
        self.shown = ShownImages()

    def status_line(self, session: Session | None) -> str:
        note = views.drawable_note(self.world, session.initial_prompt) if session is not None else ""
        return views.status(session, self.settings, " · ".join(n for n in (note, self.notice) if n))

    def pictures(self, browser: str, value):
        """Images (or (image, caption) pairs) as files in the browser's own folder; other values as they are."""
        if not isinstance(value, list) or not value:
            return value
        if isinstance(value[0], tuple):
            paths = self.shown.files(browser, [image for image, _ in value])
            return [(path, caption) for path, (_, caption) in zip(paths, value)]
        return self.shown.files(browser, value)

    # -- what a view update holds -------------------------------------------------------------------------------

    def full_view(self, session: Session | None, browser: str, new_session: bool = True) -> list:
        """Everything. The slate's images go again although they were streamed: an API client's result is the
        last message alone, and it must hold the whole slate."""
        turn = session.current if session else None
        cols = [views.caption(turn, c) if turn and c < len(turn.slate) else "" for c in range(self.L)]
        images = [
            self.pictures(browser, turn.images[c]) if turn and c < len(turn.slate) else None for c in range(self.L)
        ]
        plot = views.posterior_frame(self.agent.posterior(session)) if session and self.has_user_model else gr.skip()
        taste = views.taste_text(self.agent.session_taste(session), session) if session else gr.skip()
        return [
            session if new_session else gr.skip(),
            self.status_line(session),
            *cols,
            *images,
            self.pictures(browser, views.history_items(session)),
            views.history_table(session),
            plot,
            taste,
            self.pictures(browser, views.favourite_items(session)),
            views.summary(session),
            None,
            *self.session_controls(session),
        ]

    def session_controls(self, session: Session | None) -> list:
        """The consent box as the session has it, and its resume code where it is logged."""
        if session is None:
            return [gr.skip(), ""]
        return [session.consent, session.resume_token if session.consent else ""]

    def step_view(self, step, browser: str, new_session: bool) -> list:
        turn, session = step.turn, step.session
        if step.stage in ("done", "finished"):
            return self.full_view(session, browser, new_session)
        head = f"**Turn {turn.index + 1} of {session.max_turns}**: {step.message}…"
        skip = [gr.skip()] * 5  # history gallery and table, posterior and taste, favourites
        if step.stage == "proposed":
            cols = [views.caption(turn, c) if c < len(turn.slate) else "" for c in range(self.L)]
            return [
                session if new_session else gr.skip(),
                head,
                *cols,
                *([None] * self.L),
                *skip,
                views.summary(session, turn, 0),
                None,
                *(self.session_controls(session) if new_session else [gr.skip(), gr.skip()]),
            ]
        last = step.columns_ready  # the columns of the batch just rendered: send those, skip the rest
        first = (last - 1) // self.agent.columns_per_render * self.agent.columns_per_render
        images = [
            self.pictures(browser, turn.images[k])
            if first <= k < last
            else (None if k >= len(turn.slate) else gr.skip())
            for k in range(self.L)
        ]
        return [
            gr.skip(),
            head,
            *([gr.skip()] * self.L),
            *images,
            *skip,
            views.summary(session, turn, step.columns_ready),
            gr.skip(),
            gr.skip(),
            gr.skip(),
        ]

    def stream(self, steps, progress, request: gr.Request, new_session: bool):
        with user_errors():
            for step in steps:
                turn = f"Turn {step.turn.index + 1}: " if step.turn is not None else ""
                progress(step.fraction, desc=turn + step.message)
                yield self.step_view(step, request.session_hash, new_session)

    def need(self, session: Session | None) -> Session:
        if session is None:
            raise gr.Error("Start with a prompt first.", title="No session yet")
        return session

    # -- actions --------------------------------------------------------------------------------------------

    @on_torch_thread
    def on_start(self, text, consent_given, request: gr.Request, progress=gr.Progress()):
        yield from self.stream(self.agent.start_steps(text, consent=bool(consent_given)), progress, request, True)

    @on_torch_thread
    def on_pick(self, column, pick_rating, session, request: gr.Request, progress=gr.Progress()):
        session = self.need(session)
        with user_errors():
            column = number(column, "column") - 1
            pick_rating = None if pick_rating is None or pick_rating == "" else number(pick_rating, "rating")
        yield from self.stream(self.agent.pick_steps(session, column, pick_rating), progress, request, False)

    def pick_column(self, column: int):
        def pick(session, request: gr.Request, progress=gr.Progress()):
            yield from self.on_pick(column, None, session, request, progress)

        return pick

    @on_torch_thread
    def on_continue(self, session, request: gr.Request, progress=gr.Progress()):
        yield from self.stream(self.agent.continue_steps(self.need(session)), progress, request, False)

    @on_torch_thread
    def on_rate(self, value, turn, session):
        session = self.need(session)
        with user_errors():
            picked = [t.index for t in session.turns if t.choice is not None]
            if turn is None or turn == "":
                if not picked:
                    raise InputError("there is no pick to rate yet: pick a column first")
                index = picked[-1]
            else:
                index = number(turn, "turn") - 1
            self.agent.rate(session, index, number(value, "rating"))
        gr.Info(f"Rated turn {index + 1}: {int(value)} of 5")
        return views.history_table(session), views.summary(session)

    @on_torch_thread
    def on_back(self, turn, session, request: gr.Request):
        session = self.need(session)
        with user_errors():
            new = self.agent.branch(session, number(turn, "turn") - 1)
        return self.full_view(new, request.session_hash)

    @on_torch_thread
    def on_favourite(self, turn, column, session, request: gr.Request):
        session = self.need(session)
        with user_errors():
            index = len(session.turns) - 1 if turn is None or turn == "" else number(turn, "turn") - 1
            added = self.agent.toggle_favourite(session, index, number(column, "column") - 1)
        gr.Info(("Added to" if added else "Removed from") + " your favourites")
        return self.pictures(request.session_hash, views.favourite_items(session)), views.summary(session)

    def favourite_column(self, column: int):
        def favourite(session, request: gr.Request):
            return self.on_favourite(None, column, session, request)

        return favourite

    @on_torch_thread
    def on_explain(self, session):
        return views.explanation(self.need(session))

    @on_torch_thread
    def on_export(self, session, request: gr.Request):
        session = self.need(session)
        from pasta.app.export import export_session

        with user_errors():
            episode = None
            if session.consent and self.agent.recorder is not None:
                episode = self.agent.recorder.store.episode(session.id)
            return str(export_session(session, self.shown.export_folder(request.session_hash), episode))

    @on_torch_thread
    def on_resume(self, session_id, code, request: gr.Request):
        with user_errors():
            return self.full_view(self.agent.resume(str(session_id or ""), str(code or "")), request.session_hash)

    @on_torch_thread
    def on_load(self, saved, request: gr.Request):
        """A reload or a server restart: resume this browser's logged session, if it has one."""
        if not isinstance(saved, dict) or not saved.get("session_id"):
            return [gr.skip()] * self.view_size
        try:
            session = self.agent.resume(saved["session_id"], saved.get("resume_token"), from_browser=True)
        except Exception as error:  # an old, foreign or refused id: start afresh rather than fail the page
            log.info("could not resume the browser's session: %s", error)
            return [gr.skip()] * self.view_size
        for item in saved.get("favourites", []):
            try:
                t, c, i = item
                if 0 <= t < len(session.turns) and (t, c, i) not in session.favourites:
                    self.agent.toggle_favourite(session, t, c, i)
            except (TypeError, ValueError, InputError):
                continue
        return self.full_view(session, request.session_hash)

    def remember(self, session: Session | None) -> dict:
        if session is None or not session.consent:
            return {}
        return {
            "session_id": session.id,
            "resume_token": session.resume_token,
            "favourites": [list(f) for f in session.favourites],
        }

    def forget(self, request: gr.Request) -> None:
        """The page closed: its images and export go."""
        self.shown.forget(request.session_hash)
