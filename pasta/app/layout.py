"""The page: every component of the co-creation app, laid out once (`build_page`, inside a `gr.Blocks`), and the
list of outputs a view update fills (`Page.view`). No behaviour here: `pasta.app.handlers` acts, `pasta.app.ui`
wires the two together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from pasta.app import views
from pasta.candidates.clean import MAX_INPUT_CHARS
from pasta.config import Settings
from pasta.torch_thread import call

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

CONSENT = (
    "Log my prompts, picks, ratings and the images shown, to improve PASTA (optional). With it, this server "
    "keeps them in its log store and this browser keeps a code that resumes the session. Without it, nothing "
    "of this session is written to the log store; the images are kept only while this page is open, and "
    "deleted when it closes. Prompts the safety filter refuses are always logged, without any session."
)


def whole_number(value=None, **kwargs) -> gr.Number:
    """A whole-number input whose handler gets what the client sent, unrounded, so that the handler can refuse 2.5
    or "x" with a message naming the field: `gr.Number` itself rounds 2.5 to 2 silently and fails on "x" before any
    handler runs. (An instance attribute, not a subclass: Gradio writes a .pyi file beside any subclass.)"""
    number = gr.Number(value, precision=0, **kwargs)
    number.preprocess = lambda payload: payload
    return number


def strip(label: str) -> gr.Gallery:
    """A row of small pictures that open large and download (the history and the favourites)."""
    return gr.Gallery(
        columns=8,
        height="auto",
        fit_columns=False,
        allow_preview=True,
        buttons=["download"],
        object_fit="contain",
        elem_classes="pasta-strip",
        label=label,
    )


@dataclass
class Page:
    session_state: Any
    browser: Any
    prompt: Any
    start: Any
    consent: Any
    status: Any
    captions: Any
    galleries: Any
    pick_buttons: Any
    favourite_buttons: Any
    rating: Any
    continue_button: Any
    export_button: Any
    export_file: Any
    history_gallery: Any
    history_table: Any
    back_turn: Any
    back_button: Any
    favourites: Any
    posterior_plot: Any
    taste_text: Any
    explain_button: Any
    explain_text: Any
    explain_table: Any
    details: Any
    resume_code: Any
    resume_id: Any
    resume_code_in: Any
    resume_button: Any
    api_column: Any
    api_rating: Any
    api_turn: Any
    api_pick: Any
    api_rate: Any
    api_favourite: Any

    @property
    def view(self) -> list:
        """What a full view update fills, in order (`Handlers.full_view`)."""
        return [
            self.session_state,
            self.status,
            *self.captions,
            *self.galleries,
            self.history_gallery,
            self.history_table,
            self.posterior_plot,
            self.taste_text,
            self.favourites,
            self.details,
            self.rating,
            self.consent,
            self.resume_code,
        ]


def build_page(settings: Settings, agent, world, notice: str, secret: str | None = None) -> Page:
    """Lay out the page (call inside `gr.Blocks`). `world`: the embedded tier's world (its card under the prompt
    box), or None on the hub tier; `secret`: what encrypts the browser's saved session id and resume token."""
    L = settings.slate_size
    has_user_model = agent.user_model is not None and agent.embedder is not None
    session_state = gr.State(None)
    browser = gr.BrowserState({}, storage_key="pasta-session", secret=secret)
    gr.Markdown(
        "## PASTA: co-create images, one choice at a time\n"
        "Type what you have in mind. Each turn shows four ways to develop it, four images each: pick "
        "the column you like, and the next turn builds on it."
    )
    with gr.Row(equal_height=True):
        prompt = gr.Textbox(
            label="Your prompt",
            placeholder="e.g. a red dress on a beach",
            scale=5,
            max_lines=3,
            info=f"Up to {MAX_INPUT_CHARS} characters.",
            elem_id="pasta-prompt",
        )
        start = gr.Button("Start", variant="primary", scale=1, min_width=90, elem_id="pasta-start")
    if world is not None:  # the embedded tier tells the truth about what it can draw
        card = world.card()
        gr.Markdown(f"<small>{card.summary}</small>", elem_id="pasta-world")
        gr.Examples(
            [[e] for e in card.examples],
            inputs=prompt,
            label="Prompts it draws well",
            api_visibility="private",
            cache_examples=False,
        )
    consent = gr.Checkbox(False, label=CONSENT, elem_id="pasta-consent")
    status = gr.Markdown(views.status(None, settings, notice), elem_id="pasta-status")
    captions, galleries, pick_buttons, favourite_buttons = [], [], [], []
    with gr.Row(equal_height=False):
        for column in range(L):
            with gr.Column(elem_classes="pasta-col", min_width=150):
                captions.append(gr.Markdown(elem_classes="pasta-prompt", elem_id=f"pasta-caption-{column + 1}"))
                galleries.append(
                    gr.Gallery(
                        columns=2,
                        rows=2,
                        height="auto",
                        allow_preview=False,
                        show_label=False,
                        object_fit="contain",
                        interactive=False,
                        buttons=[],
                        elem_classes="pasta-gallery",
                        elem_id=f"pasta-column-{column + 1}",
                    )
                )
                with gr.Row():
                    pick_buttons.append(
                        gr.Button(
                            f"Pick {column + 1}", size="sm", scale=3, min_width=60, elem_id=f"pasta-pick-{column + 1}"
                        )
                    )
                    favourite_buttons.append(
                        gr.Button("♥", size="sm", scale=1, min_width=44, elem_id=f"pasta-favourite-{column + 1}")
                    )
    with gr.Row(equal_height=True):
        rating = gr.Radio(
            [1, 2, 3, 4, 5],
            label="Rate your last pick (optional): 1 = poor, 5 = great",
            scale=3,
            elem_id="pasta-rating",
        )
        continue_button = gr.Button("Continue: more turns", scale=1, min_width=120)
        export_button = gr.Button("Export session (.zip)", scale=1, min_width=120)
    export_file = gr.File(
        label="Your session: every image and a JSON of prompts, seeds and picks",
        interactive=False,
        visible=False,
        elem_id="pasta-export",
    )
    with gr.Accordion("History: every turn with its exact prompts and seeds", open=True):
        history_gallery = strip("Picked columns (select one to go back to it)")
        history_table = gr.Dataframe(
            headers=views.HISTORY_COLUMNS,
            interactive=False,
            wrap=True,
            elem_classes="pasta-history",
            column_widths=["56px", "64px", "96px", "320px", "120px", "64px"],
        )
        with gr.Row(equal_height=True):
            back_turn = whole_number(1, label="Turn to go back to", minimum=1, scale=1)
            back_button = gr.Button("Go back to this turn and branch from it", scale=2)
    with gr.Accordion("Favourites", open=False):
        favourites = strip("Your favourites (♥ under a column)")
    with gr.Accordion("Your user type: what the agent believes about your taste, from your picks", open=has_user_model):
        prior = call(agent.user_model.live_posterior, []) if has_user_model else None  # before any pick
        posterior_plot = gr.BarPlot(
            views.posterior_frame(prior),
            x="type",
            y="probability",
            y_lim=[0, 1],
            x_title="user type",
            height=180,
            visible=has_user_model,
            show_label=False,
        )
        taste_text = gr.Markdown(views.taste_text(call(agent.session_taste, None), None))
        if not has_user_model:
            gr.Markdown("No user model is loaded, so there is no user-type posterior to show.")
    with gr.Accordion("Why this slate?", open=False):
        explain_button = gr.Button("Explain this slate (scores of all candidates)")
        explain_text = gr.Markdown()
        explain_table = gr.Dataframe(
            headers=views.EXPLAIN_COLUMNS,
            interactive=False,
            wrap=True,
            column_widths=["8%", "10%", "12%", "58%", "12%"],
        )
    with gr.Accordion("Session details", open=False):
        details = gr.JSON(label="This session")
        resume_code = gr.Textbox(
            label="Your resume code: with the session id it continues this logged session "
            "on another device. Keep it private: anyone with both can act in the session.",
            type="password",
            interactive=False,
            elem_id="pasta-resume-code",
        )
        with gr.Row(equal_height=True):
            resume_id = gr.Textbox(label="Resume a logged session: its id", scale=3)
            resume_code_in = gr.Textbox(label="and its resume code", type="password", scale=3)
            resume_button = gr.Button("Resume", scale=1)
    # Inputs of API endpoints that have no visible widget of their own.
    with gr.Row(visible=False):
        api_column, api_rating, api_turn = (whole_number() for _ in range(3))
        api_pick, api_rate, api_favourite = (gr.Button() for _ in range(3))

    return Page(
        session_state=session_state,
        browser=browser,
        prompt=prompt,
        start=start,
        consent=consent,
        status=status,
        captions=captions,
        galleries=galleries,
        pick_buttons=pick_buttons,
        favourite_buttons=favourite_buttons,
        rating=rating,
        continue_button=continue_button,
        export_button=export_button,
        export_file=export_file,
        history_gallery=history_gallery,
        history_table=history_table,
        back_turn=back_turn,
        back_button=back_button,
        favourites=favourites,
        posterior_plot=posterior_plot,
        taste_text=taste_text,
        explain_button=explain_button,
        explain_text=explain_text,
        explain_table=explain_table,
        details=details,
        resume_code=resume_code,
        resume_id=resume_id,
        resume_code_in=resume_code_in,
        resume_button=resume_button,
        api_column=api_column,
        api_rating=api_rating,
        api_turn=api_turn,
        api_pick=api_pick,
        api_rate=api_rate,
        api_favourite=api_favourite,
    )
