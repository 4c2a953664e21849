"""The Gradio view of the PASTA loop. No modelling logic here: every action calls `pasta.agent.Agent`.

Per-browser state is a `gr.State` holding that browser's `Session`, so sessions never see each other.
Every user action is also a named API endpoint (`/start`, `/pick`), callable with `gradio_client`.
"""

from __future__ import annotations

import logging

import gradio as gr

from pasta.agent import Agent, InputError, Session
from pasta.backends.factory import make_candidate_generator, make_embedder, make_text_to_image
from pasta.config import Settings

log = logging.getLogger(__name__)

CSS = """
.pasta-col { min-width: 160px; }
.pasta-prompt { font-size: 0.9em; min-height: 4.5em; }
"""


def build_agent(settings: Settings) -> Agent:
    log.info("loading models for the %s tier", settings.resolved_tier())
    embedder = make_embedder(settings)
    t2i = make_text_to_image(settings)
    generator = make_candidate_generator(settings)
    return Agent(settings, embedder, t2i, generator)


def _column_updates(session: Session | None, slate_size: int) -> list:
    """Per column: the prompt caption (markdown) and the gallery."""
    out = []
    turn = session.current if session else None
    for column in range(slate_size):
        if turn is None or column >= len(turn.slate):
            out += ["", None]
            continue
        candidate = turn.slate_prompts[column]
        out += [f"**{column + 1}. {candidate.category}**  \n{candidate.text}", turn.images[column]]
    return out


def _status(session: Session | None, settings: Settings) -> str:
    if session is None or session.current is None:
        return "Type a prompt and press **Start**."
    turn = session.current
    done = turn.choice is not None
    head = f"Turn {turn.index + 1} of {settings.turns}"
    if done:
        return f"{head}: finished. Start again with a new prompt, or refine your favourite."
    return f"{head}: pick the column you like best (click an image or a *Pick* button)."


def build_demo(settings: Settings | None = None, agent: Agent | None = None) -> gr.Blocks:
    settings = settings or Settings.from_env()
    agent = agent or build_agent(settings)
    L = settings.slate_size

    with gr.Blocks(title="PASTA co-creation") as demo:
        gr.Markdown("## PASTA: co-create images, one choice at a time\n"
                    "Type what you have in mind; each turn shows four ways to develop it. Pick the one you like.")
        session_state = gr.State(None)
        with gr.Row():
            prompt = gr.Textbox(label="Your prompt", placeholder="e.g. a red dress", scale=5, max_lines=3)
            start = gr.Button("Start", variant="primary", scale=1)
        status = gr.Markdown(_status(None, settings))
        captions, galleries, buttons = [], [], []
        with gr.Row(equal_height=False):
            for column in range(L):
                with gr.Column(elem_classes="pasta-col", min_width=160):
                    captions.append(gr.Markdown(elem_classes="pasta-prompt"))
                    galleries.append(gr.Gallery(columns=2, rows=2, height="auto", allow_preview=False,
                                                show_label=False, object_fit="contain", interactive=False))
                    buttons.append(gr.Button(f"Pick {column + 1}"))
        column_outputs = [x for pair in zip(captions, galleries) for x in pair]
        outputs = [session_state, status, *column_outputs]

        def on_start(text: str, progress=gr.Progress()):
            try:
                session = agent.start(text, progress=lambda f, m: progress(f, desc=m))
            except InputError as error:
                raise gr.Error(str(error)) from None
            return [session, _status(session, settings), *_column_updates(session, L)]

        def on_pick(column: int, session: Session | None, progress=gr.Progress()):
            if session is None:
                raise gr.Error("Start with a prompt first.")
            try:
                column = int(column) - 1
                agent.pick(session, column, progress=lambda f, m: progress(f, desc=m))
            except (InputError, ValueError, TypeError) as error:
                raise gr.Error(str(error)) from None
            return [session, _status(session, settings), *_column_updates(session, L)]

        start.click(on_start, [prompt], outputs, api_name="start")
        prompt.submit(on_start, [prompt], outputs, api_visibility="private")
        column_number = gr.Number(visible=False, precision=0)
        pick_api = gr.Button(visible=False)
        pick_api.click(on_pick, [column_number, session_state], outputs, api_name="pick")
        for column, (button, gallery) in enumerate(zip(buttons, galleries), 1):
            button.click(lambda s, c=column: on_pick(c, s), [session_state], outputs, api_visibility="private")
            gallery.select(lambda s, c=column: on_pick(c, s), [session_state], outputs, api_visibility="private")
    return demo
