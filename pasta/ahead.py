"""Next slates chosen and rendered while a person looks at this one, the likeliest pick's first.

Why: on a 2-core CPU a slate of 16 images takes 3-8 s to render, longer than the page may make a person wait
after a pick, and nothing can make it cheaper without changing the model. But every column's next turn is known as
soon as the slate is shown: its history is fixed, and the policy chooses the next slate from the candidates and the
pick alone. So while the person looks, the torch thread's background lane (`pasta.torch_thread`: only while nothing
interactive runs) proposes, chooses and renders the next turn of each column in the user model's order of
likelihood. A pick whose next turn is ready shows it at once; a pick of a column that is partly rendered renders
only what is missing; any other pick costs what it cost before, plus at most one denoising step, since a click stops
the work ahead at the next step (`embedded_t2i.denoise` checks `torch_thread.preempted()`).

Nothing chosen ahead is logged or shown until the pick that leads to it: then it is committed to the log store
like any slate, before it reaches the screen. A turn chosen ahead is the same turn the pick would have chosen:
the same history, the same candidates (proposed ahead as before, `pasta.candidates.prefetch`), the same policy
state (a rating given with the pick is not part of it) and the same per-column seeds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pasta import torch_thread
from pasta.session import Session, Turn

if TYPE_CHECKING:
    from pasta.agent import Agent


@dataclass
class Ahead:
    """A next turn chosen before its pick: not logged, its images as far as rendering got."""

    turn: Turn
    refusals: list[tuple[str, str]] = field(default_factory=list)
    """(candidate text, reason) for the safety filter's refusals: logged when the turn is used."""
    history: list[str] = field(default_factory=list)
    """The prompt history the turn was chosen for."""


def after_pick(session: Session, shown: Turn, column: int) -> Session:
    """The session as it would be once `column` of the slate on screen is picked; `session` is left as it is."""
    picked = dataclasses.replace(shown, choice=column, rating=None)
    return dataclasses.replace(session, turns=[*session.turns[:-1], picked], pending=None, ahead={})


def pick_order(user_model, shown: Turn) -> list[int]:
    """The slate's columns, the likeliest pick first (the user model's choice probabilities under the turn's
    posterior, where there is a user model; else left to right)."""
    order = list(range(len(shown.slate)))
    features = shown.column_features()
    if user_model is not None and features is not None and shown.posterior is not None:
        probs = user_model.predict_choice(
            np.asarray(features, np.float32)[None], np.asarray(shown.posterior, np.float32)[None]
        )[0]
        order = [int(c) for c in np.argsort(-probs, kind="stable")]
    return order


def schedule(agent: Agent, session: Session, shown: Turn) -> None:
    """Queue the work ahead for the slate just shown, the likeliest pick first: each column's candidates
    (`agent.prefetch_histories`) and, with `agent.render_ahead`, after each proposal its turn on the background
    lane, so the likeliest turn is complete before the other proposals start."""
    session.ahead.clear()
    order = pick_order(agent.user_model, shown)
    histories = [session.history() + [shown.slate_prompts[c].text] for c in order]
    if not agent.render_ahead:
        agent.prefetch_histories(histories)
        return
    for column, history in zip(order, histories, strict=True):
        agent.prefetch_histories([history])
        torch_thread.background(work_ahead, agent, session, shown, column)


def work_ahead(agent: Agent, session: Session, shown: Turn, column: int) -> None:
    """Choose the turn a pick of `column` leads to, then render its columns in the app's batches; stops
    (`torch_thread.Preempted`) when interactive work arrives, keeping what is complete."""
    if session.current is not shown or not session.awaiting_pick:
        return  # picked meanwhile, or another slate is on screen
    key = (shown.index, column)
    entry = session.ahead.get(key)
    if entry is None:
        view = after_pick(session, shown, column)
        turn, refusals = agent.choose_turn(view)
        if torch_thread.preempted():  # a proposal that gave way may have cut corners: do not keep it
            raise torch_thread.Preempted("choosing ahead gave way to interactive work")
        turn.timings["rendered_ahead"] = 0.0
        entry = session.ahead[key] = Ahead(turn, refusals, view.history())
    turn = entry.turn
    for group in agent.column_groups(turn):
        agent.render_columns(turn, group)
        turn.timings["rendered_ahead"] = float(sum(bool(images) for images in turn.images))


def take(session: Session) -> Ahead | None:
    """The turn chosen ahead for the pick just made (None if there is none), and forget the others."""
    last = session.current
    entry = session.ahead.get((last.index, last.choice)) if last is not None else None
    session.ahead.clear()
    if entry is None or entry.turn.index != len(session.turns) or entry.history != session.history():
        return None
    return entry
