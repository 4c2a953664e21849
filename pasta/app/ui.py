"""The Gradio view of the PASTA loop. No modelling logic here: every action calls `pasta.agent.Agent`, and what is
shown is computed by `pasta.app.views` from the browser's `Session`.

- Per-browser state is a `gr.State` holding that browser's `Session`, so sessions never see each other. A
  `gr.BrowserState` keeps the id of a logged session in the browser, so that a reload, or a server restart,
  resumes it from the log store.
- Turns stream: the slate's prompts appear as soon as the policy has chosen them, then each column's images as
  they render, with a progress bar (`gr.Progress`).
- What a browser is shown is written to its own private folder (`pasta.app.shown_images`) and deleted when its page
  closes; Gradio's analytics and run history (which keeps prompts and image URLs in the browser) are off.
- Every user action is also a named API endpoint, callable with `gradio_client` (which cannot fire gallery
  selection events): /start, /pick, /rate, /back, /continue, /favourite, /explain, /export, /resume.
  Columns, turns and images are numbered from 1 there, as on screen.
- Models load, and every handler that touches them runs, on one thread (`pasta.torch_thread`): torch's OpenMP
  pool slows down for everyone once a second thread uses it.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

import gradio as gr

from pasta.agent import Agent
from pasta.app import views as views
from pasta.app.shown_images import ShownImages
from pasta.candidates.clean import MAX_INPUT_CHARS
from pasta.config import Settings
from pasta.inputs import InputError, RefusedError
from pasta.session import Session
from pasta.torch_thread import call, on_torch_thread
from pasta.worlds import load_world

log = logging.getLogger(__name__)

CSS = """
.pasta-col { min-width: 150px; }
.pasta-prompt { font-size: 0.9em; min-height: 5.4em; }
.pasta-prompt p { margin: 0; }
.pasta-gallery img { cursor: pointer; }
.pasta-gallery .grid-wrap, .pasta-strip .grid-wrap { min-height: 0 !important; height: auto !important; }
.pasta-gallery .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important;
  grid-template-rows: none !important; grid-auto-rows: auto !important; }
.pasta-gallery .thumbnail-item { aspect-ratio: 1 / 1; height: auto !important; }
.pasta-history { overflow-x: auto; }
.pasta-history th, .pasta-history th * { white-space: nowrap; }
@media (max-width: 640px) { .pasta-col { min-width: 45%; } .pasta-history table { min-width: 560px; } }
"""

CONSENT = ("Log my prompts, picks, ratings and the images shown, to improve PASTA (optional). With it, this server "
           "keeps them in its log store and this browser keeps a code that resumes the session. Without it, nothing "
           "of this session is written to the log store; the images are kept only while this page is open, and "
           "deleted when it closes. Prompts the safety filter refuses are always logged, without any session.")


def build_agent(settings: Settings) -> Agent:
    from pasta.app.factory import build_app_parts

    return call(build_app_parts, settings).agent


def launch(demo: gr.Blocks, settings: Settings, **kwargs):
    """Launch with the app's CSS, on the settings' host and port (keyword arguments go to `Blocks.launch`)."""
    kwargs.setdefault("server_name", settings.host)
    kwargs.setdefault("server_port", settings.port)
    kwargs.setdefault("run_history", _env_flag("GRADIO_RUN_HISTORY", False))  # it keeps prompts in the browser
    return demo.launch(css=CSS, **kwargs)


def _env_flag(name: str, default: bool) -> bool:
    """A Gradio setting the person set in the environment wins; otherwise this app's privacy-minded default."""
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value in ("1", "true", "yes", "on")


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
        raise gr.Error(f"Something went wrong on our side ({type(error).__name__}). What you saw so far is kept; "
                       "please try again.") from error


def whole_number(value=None, **kwargs) -> gr.Number:
    """A whole-number input whose handler gets what the client sent, unrounded, so that the handler can refuse 2.5
    or "x" with a message naming the field: `gr.Number` itself rounds 2.5 to 2 silently and fails on "x" before any
    handler runs. (An instance attribute, not a subclass: Gradio writes a .pyi file beside any subclass.)"""
    number = gr.Number(value, precision=0, **kwargs)
    number.preprocess = lambda payload: payload
    return number


def _number(value, name: str, low: int = 1) -> int:
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


def build_demo(settings: Settings | None = None, agent: Agent | None = None,
               notices: list[str] | None = None) -> gr.Blocks:
    settings = settings or Settings.from_env()
    if agent is None:
        from pasta.app.factory import build_app_parts

        parts = call(build_app_parts, settings)  # loaded on the thread that will run the models
        agent, notices = parts.agent, parts.notices
    notice = " · ".join(notices or [])
    L = settings.slate_size
    has_user_model = agent.user_model is not None and agent.embedder is not None

    shown = ShownImages()
    world = load_world(settings.world) if settings.resolved_tier() == "embedded" else None

    def status_line(session: Session | None) -> str:
        note = views.drawable_note(world, session.initial_prompt) if session is not None else ""
        return views.status(session, settings, " · ".join(n for n in (note, notice) if n))

    def pictures(browser: str, value):
        """Images (or (image, caption) pairs) as files in the browser's own folder; other values as they are."""
        if not isinstance(value, list) or not value:
            return value
        if isinstance(value[0], tuple):
            paths = shown.files(browser, [image for image, _ in value])
            return [(path, caption) for path, (_, caption) in zip(paths, value)]
        return shown.files(browser, value)

    with gr.Blocks(title="PASTA co-creation", analytics_enabled=_env_flag("GRADIO_ANALYTICS_ENABLED", False)) as demo:
        session_state = gr.State(None)
        # The browser keeps its logged session's id and resume token (the token is what lets it resume).
        secret = agent.recorder.store.secret("browser_state") if agent.recorder is not None else None
        browser = gr.BrowserState({}, storage_key="pasta-session", secret=secret)
        gr.Markdown("## PASTA: co-create images, one choice at a time\n"
                    "Type what you have in mind. Each turn shows four ways to develop it, four images each: pick "
                    "the column you like, and the next turn builds on it.")
        with gr.Row(equal_height=True):
            prompt = gr.Textbox(label="Your prompt", placeholder="e.g. a red dress on a beach", scale=5, max_lines=3,
                                info=f"Up to {MAX_INPUT_CHARS} characters.", elem_id="pasta-prompt")
            start = gr.Button("Start", variant="primary", scale=1, min_width=90, elem_id="pasta-start")
        if world is not None:  # the embedded tier tells the truth about what it can draw
            card = world.card()
            gr.Markdown(f"<small>{card.summary}</small>", elem_id="pasta-world")
            gr.Examples([[e] for e in card.examples], inputs=prompt, label="Prompts it draws well",
                        api_visibility="private", cache_examples=False)
        consent = gr.Checkbox(False, label=CONSENT, elem_id="pasta-consent")
        status = gr.Markdown(views.status(None, settings, notice), elem_id="pasta-status")
        captions, galleries, pick_buttons, favourite_buttons = [], [], [], []
        with gr.Row(equal_height=False):
            for column in range(L):
                with gr.Column(elem_classes="pasta-col", min_width=150):
                    captions.append(gr.Markdown(elem_classes="pasta-prompt", elem_id=f"pasta-caption-{column + 1}"))
                    galleries.append(gr.Gallery(columns=2, rows=2, height="auto", allow_preview=False,
                                                show_label=False, object_fit="contain", interactive=False,
                                                buttons=[], elem_classes="pasta-gallery",
                                                elem_id=f"pasta-column-{column + 1}"))
                    with gr.Row():
                        pick_buttons.append(gr.Button(f"Pick {column + 1}", size="sm", scale=3, min_width=60,
                                                      elem_id=f"pasta-pick-{column + 1}"))
                        favourite_buttons.append(gr.Button("♥", size="sm", scale=1, min_width=44,
                                                           elem_id=f"pasta-favourite-{column + 1}"))
        with gr.Row(equal_height=True):
            rating = gr.Radio([1, 2, 3, 4, 5], label="Rate your last pick (optional): 1 = poor, 5 = great",
                              scale=3, elem_id="pasta-rating")
            continue_button = gr.Button("Continue: more turns", scale=1, min_width=120)
            export_button = gr.Button("Export session (.zip)", scale=1, min_width=120)
        export_file = gr.File(label="Your session: every image and a JSON of prompts, seeds and picks",
                              interactive=False, visible=False, elem_id="pasta-export")
        with gr.Accordion("History: every turn with its exact prompts and seeds", open=True):
            history_gallery = gr.Gallery(columns=8, height="auto", fit_columns=False, allow_preview=True,
                                         buttons=["download"], object_fit="contain", elem_classes="pasta-strip",
                                         label="Picked columns (select one to go back to it)")
            history_table = gr.Dataframe(headers=views.HISTORY_COLUMNS, interactive=False, wrap=True,
                                         elem_classes="pasta-history",
                                         column_widths=["56px", "64px", "96px", "320px", "120px", "64px"])
            with gr.Row(equal_height=True):
                back_turn = whole_number(1, label="Turn to go back to", minimum=1, scale=1)
                back_button = gr.Button("Go back to this turn and branch from it", scale=2)
        with gr.Accordion("Favourites", open=False):
            favourites = gr.Gallery(columns=8, height="auto", fit_columns=False, allow_preview=True,
                                    buttons=["download"], object_fit="contain", elem_classes="pasta-strip",
                                    label="Your favourites (♥ under a column)")
        with gr.Accordion("Your user type: what the agent believes about your taste, from your picks",
                          open=has_user_model):
            prior = call(agent.user_model.live_posterior, []) if has_user_model else None  # before any pick
            posterior_plot = gr.BarPlot(views.posterior_frame(prior), x="type", y="probability", y_lim=[0, 1],
                                        x_title="user type", height=180, visible=has_user_model, show_label=False)
            if not has_user_model:
                gr.Markdown("No user model is loaded, so there is no user-type posterior to show.")
        with gr.Accordion("Why this slate?", open=False):
            explain_button = gr.Button("Explain this slate (scores of all candidates)")
            explain_text = gr.Markdown()
            explain_table = gr.Dataframe(headers=views.EXPLAIN_COLUMNS, interactive=False, wrap=True,
                                         column_widths=["8%", "10%", "12%", "58%", "12%"])
        with gr.Accordion("Session details", open=False):
            details = gr.JSON(label="This session")
            resume_code = gr.Textbox(label="Your resume code: with the session id it continues this logged session "
                                     "on another device. Keep it private: anyone with both can act in the session.",
                                     type="password", interactive=False, elem_id="pasta-resume-code")
            with gr.Row(equal_height=True):
                resume_id = gr.Textbox(label="Resume a logged session: its id", scale=3)
                resume_code_in = gr.Textbox(label="and its resume code", type="password", scale=3)
                resume_button = gr.Button("Resume", scale=1)
        # Inputs of API endpoints that have no visible widget of their own.
        with gr.Row(visible=False):
            api_column, api_rating, api_turn = (whole_number() for _ in range(3))
            api_pick, api_rate, api_favourite = (gr.Button() for _ in range(3))

        view = [session_state, status, *captions, *galleries, history_gallery, history_table, posterior_plot,
                favourites, details, rating, consent, resume_code]

        # -- what a view update holds ---------------------------------------------------------------------------

        def full_view(session: Session | None, browser: str, new_session: bool = True) -> list:
            """Everything. The slate's images go again although they were streamed: an API client's result is the
            last message alone, and it must hold the whole slate."""
            turn = session.current if session else None
            cols = [views.caption(turn, c) if turn and c < len(turn.slate) else "" for c in range(L)]
            images = [pictures(browser, turn.images[c]) if turn and c < len(turn.slate) else None for c in range(L)]
            plot = views.posterior_frame(agent.posterior(session)) if session and has_user_model else gr.skip()
            return [session if new_session else gr.skip(), status_line(session), *cols, *images,
                    pictures(browser, views.history_items(session)), views.history_table(session), plot,
                    pictures(browser, views.favourite_items(session)), views.summary(session), None,
                    *session_controls(session)]

        def session_controls(session: Session | None) -> list:
            """The consent box as the session has it, and its resume code where it is logged."""
            if session is None:
                return [gr.skip(), ""]
            return [session.consent, session.resume_token if session.consent else ""]

        def step_view(step, browser: str, new_session: bool) -> list:
            turn, session = step.turn, step.session
            if step.stage in ("done", "finished"):
                return full_view(session, browser, new_session)
            head = f"**Turn {turn.index + 1} of {session.max_turns}**: {step.message}…"
            skip = [gr.skip()] * 4  # history gallery and table, posterior, favourites
            if step.stage == "proposed":
                cols = [views.caption(turn, c) if c < len(turn.slate) else "" for c in range(L)]
                return [session if new_session else gr.skip(), head, *cols, *([None] * L), *skip,
                        views.summary(session, turn, 0), None,
                        *(session_controls(session) if new_session else [gr.skip(), gr.skip()])]
            c = step.columns_ready - 1
            images = [pictures(browser, turn.images[c]) if k == c else gr.skip() for k in range(L)] \
                if agent.render_in_columns else [pictures(browser, turn.images[k]) if k < len(turn.slate) else None
                                                 for k in range(L)]
            return [gr.skip(), head, *([gr.skip()] * L), *images, *skip,
                    views.summary(session, turn, step.columns_ready), gr.skip(), gr.skip(), gr.skip()]

        def stream(steps, progress, request: gr.Request, new_session: bool):
            with user_errors():
                for step in steps:
                    turn = f"Turn {step.turn.index + 1}: " if step.turn is not None else ""
                    progress(step.fraction, desc=turn + step.message)
                    yield step_view(step, request.session_hash, new_session)

        def need(session: Session | None) -> Session:
            if session is None:
                raise gr.Error("Start with a prompt first.", title="No session yet")
            return session

        # -- actions --------------------------------------------------------------------------------------------

        @on_torch_thread
        def on_start(text, consent_given, request: gr.Request, progress=gr.Progress()):
            yield from stream(agent.start_steps(text, consent=bool(consent_given)), progress, request, True)

        @on_torch_thread
        def on_pick(column, pick_rating, session, request: gr.Request, progress=gr.Progress()):
            session = need(session)
            with user_errors():
                column = _number(column, "column") - 1
                pick_rating = None if pick_rating is None or pick_rating == "" else _number(pick_rating, "rating")
            yield from stream(agent.pick_steps(session, column, pick_rating), progress, request, False)

        def pick_column(column: int):
            def pick(session, request: gr.Request, progress=gr.Progress()):
                yield from on_pick(column, None, session, request, progress)

            return pick

        @on_torch_thread
        def on_continue(session, request: gr.Request, progress=gr.Progress()):
            yield from stream(agent.continue_steps(need(session)), progress, request, False)

        @on_torch_thread
        def on_rate(value, turn, session):
            session = need(session)
            with user_errors():
                picked = [t.index for t in session.turns if t.choice is not None]
                if turn is None or turn == "":
                    if not picked:
                        raise InputError("there is no pick to rate yet: pick a column first")
                    index = picked[-1]
                else:
                    index = _number(turn, "turn") - 1
                agent.rate(session, index, _number(value, "rating"))
            gr.Info(f"Rated turn {index + 1}: {int(value)} of 5")
            return views.history_table(session), views.summary(session)

        @on_torch_thread
        def on_back(turn, session, request: gr.Request):
            session = need(session)
            with user_errors():
                new = agent.branch(session, _number(turn, "turn") - 1)
            return full_view(new, request.session_hash)

        @on_torch_thread
        def on_favourite(turn, column, session, request: gr.Request):
            session = need(session)
            with user_errors():
                index = len(session.turns) - 1 if turn is None or turn == "" else _number(turn, "turn") - 1
                added = agent.toggle_favourite(session, index, _number(column, "column") - 1)
            gr.Info(("Added to" if added else "Removed from") + " your favourites")
            return pictures(request.session_hash, views.favourite_items(session)), views.summary(session)

        def favourite_column(column: int):
            def favourite(session, request: gr.Request):
                return on_favourite(None, column, session, request)

            return favourite

        @on_torch_thread
        def on_explain(session):
            return views.explanation(need(session))

        @on_torch_thread
        def on_export(session, request: gr.Request):
            session = need(session)
            from pasta.app.export import export_session

            with user_errors():
                episode = None
                if session.consent and agent.recorder is not None:
                    episode = agent.recorder.store.episode(session.id)
                return str(export_session(session, shown.export_folder(request.session_hash), episode))

        @on_torch_thread
        def on_resume(session_id, code, request: gr.Request):
            with user_errors():
                return full_view(agent.resume(str(session_id or ""), str(code or "")), request.session_hash)

        @on_torch_thread
        def on_load(saved, request: gr.Request):
            """A reload or a server restart: resume this browser's logged session, if it has one."""
            if not isinstance(saved, dict) or not saved.get("session_id"):
                return [gr.skip()] * len(view)
            try:
                session = agent.resume(saved["session_id"], saved.get("resume_token"), from_browser=True)
            except Exception as error:  # an old, foreign or refused id: start afresh rather than fail the page
                log.info("could not resume the browser's session: %s", error)
                return [gr.skip()] * len(view)
            for item in saved.get("favourites", []):
                try:
                    t, c, i = item
                    if 0 <= t < len(session.turns) and (t, c, i) not in session.favourites:
                        agent.toggle_favourite(session, t, c, i)
                except (TypeError, ValueError, InputError):
                    continue
            return full_view(session, request.session_hash)

        def remember(session: Session | None) -> dict:
            if session is None or not session.consent:
                return {}
            return {"session_id": session.id, "resume_token": session.resume_token,
                    "favourites": [list(f) for f in session.favourites]}

        # -- wiring ---------------------------------------------------------------------------------------------

        # The progress bar on the status line alone: drawn over all ~20 outputs, it cost a browser on 2 cores more
        # time than the turn's own work (pasta bench app --browser).
        turn_events = {"concurrency_id": "turn", "concurrency_limit": 2, "trigger_mode": "once",
                       "show_progress_on": [status]}

        def then_remember(event):
            event.success(remember, [session_state], [browser], api_visibility="private", queue=False)
            return event

        def new_session_event(event):
            """A start, branch or resume: remember the session, and take down the last session's export link."""
            then_remember(event).success(lambda: gr.update(value=None, visible=False), None, export_file,
                                         api_visibility="private", queue=False)

        new_session_event(start.click(on_start, [prompt, consent], view, api_name="start", **turn_events))
        new_session_event(prompt.submit(on_start, [prompt, consent], view, api_visibility="private", **turn_events))
        then_remember(api_pick.click(on_pick, [api_column, api_rating, session_state], view, api_name="pick",
                                     **turn_events))
        for column, (button, gallery) in enumerate(zip(pick_buttons, galleries), 1):
            button.click(pick_column(column), [session_state], view, api_visibility="private", **turn_events)
            gallery.select(pick_column(column), [session_state], view, api_visibility="private", **turn_events)
        continue_button.click(on_continue, [session_state], view, api_name="continue", **turn_events)
        api_rate.click(on_rate, [api_rating, api_turn, session_state], [history_table, details], api_name="rate")
        rating.input(lambda value, session: on_rate(value, None, session), [rating, session_state],
                     [history_table, details], api_visibility="private")
        new_session_event(back_button.click(on_back, [back_turn, session_state], view, api_name="back"))
        def choose_back_turn(evt: gr.SelectData) -> int:
            return evt.index + 1

        history_gallery.select(choose_back_turn, None, back_turn, api_visibility="private")
        then_remember(api_favourite.click(on_favourite, [api_turn, api_column, session_state], [favourites, details],
                                          api_name="favourite"))
        for column, button in enumerate(favourite_buttons, 1):
            then_remember(button.click(favourite_column(column), [session_state], [favourites, details],
                                       api_visibility="private"))
        explain_button.click(on_explain, [session_state], [explain_text, explain_table], api_name="explain")
        export_button.click(on_export, [session_state], export_file, api_name="export").success(
            lambda: gr.update(visible=True), None, export_file, api_visibility="private", queue=False)
        new_session_event(resume_button.click(on_resume, [resume_id, resume_code_in], view, api_name="resume",
                                              **turn_events))
        then_remember(demo.load(on_load, [browser], view, api_visibility="private"))

        def forget(request: gr.Request):
            shown.forget(request.session_hash)

        demo.unload(forget)  # the page closed: its images and export go
    demo.queue(default_concurrency_limit=4)
    demo.pasta_shown = shown  # where this app's shown images live (tests look there)
    return demo
