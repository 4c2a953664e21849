"""What the app shows, computed from a `Session`: plain values (strings, tables, image lists) with no Gradio in
them, so they are easy to test and the UI module only wires them to components.

Everything that came from a person or a model is escaped before it reaches Markdown: a prompt such as
`[click](javascript:...)` or `<img onerror=...>` is shown as the text it is.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
from PIL import Image

from pasta.policy.slate import KEEP_CATEGORY

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def escape_md(text: str) -> str:
    """Text shown literally inside Markdown: HTML escaped, Markdown syntax backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def caption(turn, column: int) -> str:
    candidate = turn.slate_prompts[column]
    picked = " ✓ picked" if turn.choice == column else ""
    return f"**{column + 1}. {escape_md(candidate.category)}**{picked}  \n{escape_md(candidate.text)}"


def status(session, settings, notice: str = "") -> str:
    if session is None or session.current is None:
        text = "Type a prompt and press **Start**. Each turn shows four ways to develop it: pick the one you like."
    else:
        turn = session.current
        head = f"**Turn {turn.index + 1} of {session.max_turns}**"
        if turn.choice is None:
            text = f"{head}: pick the column you like best (click an image or a *Pick* button)."
        elif session.finished:
            text = (
                f"{head}: finished; you picked column {turn.choice + 1}. Rate it, press *Continue* for more "
                "turns, go back to an earlier turn, or start again with a new prompt."
            )
        else:  # the next slate was interrupted (the page closed while it rendered)
            text = f"{head}: you picked column {turn.choice + 1}. Press *Continue* to see the next slate."
        if session.branch_of is not None:
            text += f"  \n_Branched from turn {session.branch_of[1] + 1} of an earlier session._"
    return text + (f"  \n<small>{escape_md(notice)}</small>" if notice else "")


def drawable_note(world, prompt: str) -> str:
    """A polite line when the offline model's world (`pasta.worlds.world.World`) knows nothing the prompt names."""
    if world is None or not prompt or world.drawable(prompt):
        return ""
    return (
        f"The offline model knows nothing that “{prompt}” names, so "
        f"{world.card().instead}. The examples under the prompt box show what it draws."
    )


DISPLAY_SIDE = 256
"""Images smaller than this (the embedded model draws 32 px) are shown at this side."""


def for_display(image: Image.Image, side: int = DISPLAY_SIDE) -> Image.Image:
    """An image as people see it: a small one enlarged smoothly (Lanczos), not in blocks; large ones as they are."""
    if max(image.size) >= side:
        return image
    scale = side / max(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)


def history_items(session) -> list[tuple]:
    """Per turn, a thumbnail (first image of the picked column, or of column 1 before a pick) and its caption."""
    items = []
    for turn in session.turns if session else []:
        column = turn.choice if turn.choice is not None else 0
        candidate = turn.slate_prompts[column]
        pick = f"picked {column + 1}" if turn.choice is not None else "no pick yet"
        items.append(
            (turn.images[column][0], f"Turn {turn.index + 1} ({pick}, seed {turn.seeds[column]}): {candidate.text}")
        )
    return items


HISTORY_COLUMNS = ["turn", "picked", "category", "picked prompt", "seed", "rating"]


def history_table(session) -> pd.DataFrame:
    """Per turn the picked column's exact prompt and seed (every column's are in the session details)."""
    rows = []
    for turn in session.turns if session else []:
        chosen = turn.chosen
        rows.append(
            [
                turn.index + 1,
                "" if turn.choice is None else turn.choice + 1,
                chosen.category if chosen else "",
                chosen.text if chosen else "",
                turn.seeds[turn.choice] if chosen else "",
                turn.rating or "",
            ]
        )
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def posterior_frame(posterior) -> pd.DataFrame:
    """Columns `type` and `probability` (no spaces in the names: the plot's Vega-Lite fields cannot have them)."""
    values = [] if posterior is None else [float(p) for p in np.asarray(posterior)]
    return pd.DataFrame({"type": [f"type {k + 1}" for k in range(len(values))], "probability": values})


NEARNESS_SHOWN = 0.5
"""|w| below which the nearness estimate is not mentioned: near zero, the picks stay as near the first prompt as the
types expected."""


def taste_text(taste, session) -> str:
    """The session's own estimate (`pasta.policy.session_estimate.SessionTaste`) in words, under the type plot;
    empty where the policy keeps none."""
    if taste is None:
        return ""
    if taste.picks == 0:
        return (
            "Beyond the types: each pick also tells the agent what the types miss (how near your first prompt "
            "you like to stay, which edits you favour); it has no picks to read yet."
        )
    fit = round(100 * taste.types_explain)
    lines = [
        f"**Beyond the types**, from {taste.picks} pick{'s' * (taste.picks != 1)}: the learned types explain your "
        f"picks with probability {fit}% (50% is as well as chance); "
        + (
            "so the slates mostly follow them."
            if fit >= 50
            else "so the slates also try edits the types would not, to find what you have in mind."
        )
    ]
    if abs(taste.nearness) >= NEARNESS_SHOWN:
        way = "stay nearer to" if taste.nearness > 0 else "move further from"
        lines.append(f"Your picks {way} your first prompt than the types expected, and the slates follow that.")
    turn = session.current if session is not None else None
    if taste.favoured and turn is not None:
        names = ", ".join(f"“{escape_md(turn.candidates[i].text)}”" for i in taste.favoured)
        lines.append(f"Of this turn's candidates, your picks so far favour {names}.")
    return "  \n".join(lines)


EXPLAIN_COLUMNS = ["rank", "score", "category", "candidate", "shown in column"]


def explanation(session) -> tuple[str, pd.DataFrame]:
    """Why the current slate: every candidate's score (Q-value for the trained agent), best first."""
    turn = session.current if session else None
    if turn is None:
        return "Start a session to see why its slates were chosen.", pd.DataFrame(columns=EXPLAIN_COLUMNS)
    order = np.argsort(-np.asarray(turn.scores), kind="stable")
    rows = [
        [
            rank + 1,
            round(turn.scores[i], 4),
            turn.candidates[i].category,
            turn.candidates[i].text,
            turn.slate.index(i) + 1 if i in turn.slate else "",
        ]
        for rank, i in enumerate(order)
    ]
    if turn.policy.startswith("iql"):
        how = (
            "the trained PASTA agent scored each candidate with its Q-network (the value of showing it, now "
            "and for the turns after, under your user-type posterior)"
            + (
                ", plus what your own picks in this session say beyond the types (see *Your user type*)"
                if turn.policy != "iql"
                else ""
            )
            + "; the slate, one candidate from each of four categories, is the one whose column you are likely to "
            "pick is worth most"
            + (
                ", and on this last turn it keeps your current prompt (reworded) so that you can stay with it"
                if turn.index == session.max_turns - 1
                and any(turn.candidates[i].category == KEEP_CATEGORY for i in turn.slate)
                else ""
            )
        )
    elif turn.policy == "lmm-order":
        how = (
            "no trained agent is loaded, so the baseline shows the language model's first candidate in each "
            "category (score = minus its position)"
        )
    else:
        how = f"the {escape_md(turn.policy)} policy scored each candidate; the slate takes the best per category"
    refused = f" The safety filter removed {len(turn.refused)} candidate(s)." if turn.refused else ""
    text = (
        f"**Why turn {turn.index + 1} shows these {len(turn.slate)} columns:** {how}.{refused} "
        f"{len(turn.candidates)} candidates, best first:"
    )
    return text, pd.DataFrame(rows, columns=EXPLAIN_COLUMNS)


def favourite_items(session) -> list[tuple]:
    items = []
    for t, c, i in session.favourites if session else []:
        turn = session.turns[t]
        for k in range(len(turn.images[c])) if i is None else [i]:
            items.append((turn.images[c][k], f"Turn {t + 1}, column {c + 1}: {turn.slate_prompts[c].text}"))
    return items


def summary(session, turn=None, columns_ready: int | None = None) -> dict:
    """Session details for people and API clients: ids, the slate's exact prompts and seeds, the history."""
    if session is None:
        return {}
    turn = turn if turn is not None else session.current
    out = {
        "session_id": session.id,
        "logged": session.consent,
        "initial_prompt": session.initial_prompt,
        "seed": session.seed,
        "turns_done": sum(t.choice is not None for t in session.turns),
        "max_turns": session.max_turns,
        "finished": session.finished,
        "history": session.history(),
        "branch_of": None
        if session.branch_of is None
        else {"session_id": session.branch_of[0], "turn": session.branch_of[1] + 1},
    }
    if turn is not None:
        ready = len(turn.slate) if columns_ready is None else columns_ready
        out.update(
            turn=turn.index + 1,
            policy=turn.policy,
            columns_ready=ready,
            awaiting_pick=turn.choice is None and ready == len(turn.slate) and turn in session.turns,
            slate=[
                {"column": c + 1, "category": cand.category, "prompt": cand.text, "seed": turn.seeds[c]}
                for c, cand in enumerate(turn.slate_prompts)
            ],
            timings={k: round(v, 3) for k, v in turn.timings.items()},
        )
    return out
