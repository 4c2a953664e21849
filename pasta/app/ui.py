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

import os

import gradio as gr

from pasta.agent import Agent
from pasta.app.handlers import Handlers
from pasta.app.layout import CSS, build_page
from pasta.config import Settings
from pasta.torch_thread import call
from pasta.worlds import load_world


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


def build_demo(
    settings: Settings | None = None, agent: Agent | None = None, notices: list[str] | None = None
) -> gr.Blocks:
    """The page (`pasta.app.layout`), its actions (`pasta.app.handlers`), and the events that join them."""
    settings = settings or Settings.from_env()
    if agent is None:
        from pasta.app.factory import build_app_parts

        parts = call(build_app_parts, settings)  # loaded on the thread that will run the models
        agent, notices = parts.agent, parts.notices
    notice = " · ".join(notices or [])
    world = load_world(settings.world) if settings.resolved_tier() == "embedded" else None
    with gr.Blocks(title="PASTA co-creation", analytics_enabled=_env_flag("GRADIO_ANALYTICS_ENABLED", False)) as demo:
        # The browser keeps its logged session's id and resume token (the token is what lets it resume).
        secret = agent.recorder.store.secret("browser_state") if agent.recorder is not None else None
        page = build_page(settings, agent, world, notice, secret)
        act = Handlers(settings, agent, world, notice, len(page.view))
        wire(demo, page, act)
    demo.queue(default_concurrency_limit=4)
    demo.pasta_shown = act.shown  # where this app's shown images live (tests look there)
    return demo


def wire(demo: gr.Blocks, page, act: Handlers) -> None:
    """Every event of the page; each user action is also a named API endpoint."""
    p, view = page, page.view
    # The progress bar on the status line alone: drawn over all ~20 outputs, it cost a browser on 2 cores more
    # time than the turn's own work (pasta bench app --browser).
    turn_events = {
        "concurrency_id": "turn",
        "concurrency_limit": 2,
        "trigger_mode": "once",
        "show_progress_on": [p.status],
    }

    def then_remember(event):
        event.success(act.remember, [p.session_state], [p.browser], api_visibility="private", queue=False)
        return event

    def new_session_event(event):
        """A start, branch or resume: remember the session, and take down the last session's export link."""
        then_remember(event).success(
            lambda: gr.update(value=None, visible=False), None, p.export_file, api_visibility="private", queue=False
        )

    def choose_back_turn(evt: gr.SelectData) -> int:
        return evt.index + 1

    new_session_event(p.start.click(act.on_start, [p.prompt, p.consent], view, api_name="start", **turn_events))
    new_session_event(
        p.prompt.submit(act.on_start, [p.prompt, p.consent], view, api_visibility="private", **turn_events)
    )
    then_remember(
        p.api_pick.click(
            act.on_pick, [p.api_column, p.api_rating, p.session_state], view, api_name="pick", **turn_events
        )
    )
    for column, (button, gallery) in enumerate(zip(p.pick_buttons, p.galleries), 1):
        button.click(act.pick_column(column), [p.session_state], view, api_visibility="private", **turn_events)
        gallery.select(act.pick_column(column), [p.session_state], view, api_visibility="private", **turn_events)
    p.continue_button.click(act.on_continue, [p.session_state], view, api_name="continue", **turn_events)
    p.api_rate.click(
        act.on_rate, [p.api_rating, p.api_turn, p.session_state], [p.history_table, p.details], api_name="rate"
    )
    p.rating.input(
        lambda value, session: act.on_rate(value, None, session),
        [p.rating, p.session_state],
        [p.history_table, p.details],
        api_visibility="private",
    )
    new_session_event(p.back_button.click(act.on_back, [p.back_turn, p.session_state], view, api_name="back"))
    p.history_gallery.select(choose_back_turn, None, p.back_turn, api_visibility="private")
    then_remember(
        p.api_favourite.click(
            act.on_favourite,
            [p.api_turn, p.api_column, p.session_state],
            [p.favourites, p.details],
            api_name="favourite",
        )
    )
    for column, button in enumerate(p.favourite_buttons, 1):
        then_remember(
            button.click(
                act.favourite_column(column), [p.session_state], [p.favourites, p.details], api_visibility="private"
            )
        )
    p.explain_button.click(act.on_explain, [p.session_state], [p.explain_text, p.explain_table], api_name="explain")
    p.export_button.click(act.on_export, [p.session_state], p.export_file, api_name="export").success(
        lambda: gr.update(visible=True), None, p.export_file, api_visibility="private", queue=False
    )
    new_session_event(
        p.resume_button.click(act.on_resume, [p.resume_id, p.resume_code_in], view, api_name="resume", **turn_events)
    )
    then_remember(demo.load(act.on_load, [p.browser], view, api_visibility="private"))
    demo.unload(act.forget)  # the page closed: its images and export go
