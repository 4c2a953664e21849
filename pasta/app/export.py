"""A session as one zip a person can keep: every image shown, and a JSON of the exact prompts, seeds and picks.

Layout of `pasta-session-<id>.zip`:

    session.json                       prompts, categories, seeds, candidates with scores, picks, ratings, favourites
    turn1/column1_1.png ...            the M images of every column of every turn
    favourites/turn2_column3_1.png     copies of the favourite images
    log_episode.json                   the rows the log store holds for the session (only when it was logged)
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np


def session_dict(session) -> dict:
    """The session as JSON-ready data (no images); image names are those inside the zip."""
    turns = []
    for turn in session.turns:
        columns = []
        for column, candidate in enumerate(turn.slate_prompts):
            columns.append(
                {
                    "column": column + 1,
                    "category": candidate.category,
                    "prompt": candidate.text,
                    "seed": turn.seeds[column],
                    "score": turn.scores[turn.slate[column]],
                    "images": [
                        f"turn{turn.index + 1}/column{column + 1}_{i + 1}.png" for i in range(len(turn.images[column]))
                    ],
                }
            )
        turns.append(
            {
                "turn": turn.index + 1,
                "prompt": turn.prompt,
                "policy": turn.policy,
                "columns": columns,
                "picked_column": None if turn.choice is None else turn.choice + 1,
                "rating": turn.rating,
                "candidates": [
                    {
                        "text": c.text,
                        "category": c.category,
                        "source": c.source,
                        "score": turn.scores[i],
                        "shown_in_column": turn.slate.index(i) + 1 if i in turn.slate else None,
                    }
                    for i, c in enumerate(turn.candidates)
                ],
                "refused_candidates": [{"text": c.text, "category": c.category} for c in turn.refused],
                "user_type_posterior": None if turn.posterior is None else [round(float(p), 6) for p in turn.posterior],
            }
        )
    return {
        "format": "pasta-session/1",
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "session_id": session.id,
        "initial_prompt": session.initial_prompt,
        "seed": session.seed,
        "logged": session.consent,
        "max_turns": session.max_turns,
        "branch_of": None
        if session.branch_of is None
        else {"session_id": session.branch_of[0], "turn": session.branch_of[1] + 1},
        "history": session.history(),
        "turns": turns,
        "favourites": [
            {"turn": t + 1, "column": c + 1, "image": None if i is None else i + 1} for t, c, i in session.favourites
        ],
    }


def export_session(session, folder: str | Path, episode: dict | None = None) -> Path:
    """Write the session's zip into `folder` (replacing an earlier export of it) and return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"pasta-session-{session.id}.zip"
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("session.json", json.dumps(session_dict(session), indent=2, ensure_ascii=False))
        for turn in session.turns:
            for column, images in enumerate(turn.images):
                for i, image in enumerate(images):
                    z.writestr(f"turn{turn.index + 1}/column{column + 1}_{i + 1}.png", _png(image))
        for t, c, i in session.favourites:
            images = session.turns[t].images[c]
            for k in range(len(images)) if i is None else [i]:
                z.writestr(f"favourites/turn{t + 1}_column{c + 1}_{k + 1}.png", _png(images[k]))
        if episode is not None:
            z.writestr("log_episode.json", json.dumps(_jsonable(_zip_paths(episode)), indent=2, ensure_ascii=False))
    tmp.replace(path)
    return path


def _zip_paths(episode: dict) -> dict:
    """The logged episode with its image paths replaced by the images' names inside the zip: an export names no
    folder of the server it came from."""
    turns = []
    for turn in episode.get("turns", []):
        slate = [
            {
                **column,
                "image_paths": None
                if column.get("image_paths") is None
                else [
                    f"turn{turn['turn_index'] + 1}/column{column['column'] + 1}_{i + 1}.png"
                    for i in range(len(column["image_paths"]))
                ],
            }
            for column in turn.get("slate", [])
        ]
        turns.append({**turn, "slate": slate})
    return {**episode, "turns": turns}


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
