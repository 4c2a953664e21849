"""The app as API clients use it: a real Gradio server in this process, driven with gradio_client through its
named endpoints, and the real SQLite log store checked afterwards."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import pytest
from gradio_client import Client

SLATE = 4


class View:
    """The outputs of a turn endpoint, by name (the session's gr.State is not part of the API)."""

    def __init__(self, out: tuple) -> None:
        self.raw = out
        self.status = out[0]
        self.captions = list(out[1 : 1 + SLATE])
        self.galleries = list(out[1 + SLATE : 1 + 2 * SLATE])
        (
            self.history,
            self.history_table,
            self.posterior,
            self.taste,
            self.favourites,
            self.details,
            self.rating,
            self.consent,
            self.resume_code,
        ) = out[1 + 2 * SLATE :]


def start(client: Client, prompt: str, consent: bool = True) -> View:
    return View(client.predict(prompt, consent, api_name="/start"))


def pick(client: Client, column: int, rating: int | None = None) -> View:
    return View(client.predict(column, rating, api_name="/pick"))


def logged(server, session_id: str) -> tuple:
    """What the log store holds of a session (arrays as lists, so two snapshots compare), and its row counts."""
    from pasta.app.export import _jsonable

    return _jsonable(server.store.episode(session_id)), server.store.counts()


@pytest.fixture(scope="module")
def server(start_app):
    return start_app()


@pytest.fixture(scope="module")
def fast_server(start_app):
    """One image per column: the same loop, four times faster, for the tests about behaviour rather than size."""
    return start_app(images_per_prompt=1, turns=3)


def test_a_five_turn_session_through_the_api_is_in_the_log_store(server):
    client = server.client()
    view = start(client, "a green coat")
    assert "Turn 1 of 5" in view.status
    assert all(len(g) == 4 and all(Path(item["image"]).is_file() for item in g) for g in view.galleries)
    assert all(c.startswith("**") for c in view.captions)
    session_id = view.details["session_id"]
    assert view.details["awaiting_pick"] and [c["column"] for c in view.details["slate"]] == [1, 2, 3, 4]
    picks = [2, 1, 4, 3, 2]
    shown = [view.details["slate"]]
    assert "no picks to read yet" in view.taste  # the agent's session estimate, before any pick
    from pasta.tools.bench_app import DETAILS

    assert view.raw[DETAILS] == view.details  # where `pasta bench app` reads them
    for turn, column in enumerate(picks, 1):
        view = pick(client, column, rating=5 if turn == 2 else None)
        shown.append(view.details.get("slate"))
        assert len(view.history) == min(turn + 1, 5)
        assert f"from {turn} pick" in view.taste and "learned types explain your picks" in view.taste
    assert "finished" in view.status and view.details["finished"]
    assert view.details["history"][1:] == [shown[t][c - 1]["prompt"] for t, c in enumerate(picks)]
    assert len(view.history_table["data"]) == 5

    client.predict(3, 4, api_name="/rate")  # re-rate turn 4
    explanation, table = client.predict(api_name="/explain")
    assert "Q-network" in explanation and len(table["data"]) >= SLATE
    scores = [row[1] for row in table["data"]]
    assert scores == sorted(scores, reverse=True)

    episode = server.store.episode(session_id)
    assert episode["consent"] and episode["settings"]["policy"] == "iql+adapt+explore"
    assert [t["choice"]["column"] for t in episode["turns"]] == [c - 1 for c in picks]
    assert [t["choice"]["rating"] for t in episode["turns"]] == [None, 5, None, 3, None]
    for t, logged in enumerate(episode["turns"]):
        assert len(logged["candidates"]) >= SLATE and all(c["score"] is not None for c in logged["candidates"])
        assert [s["prompt"] for s in logged["slate"]] == [c["prompt"] for c in shown[t]]
        for column in logged["slate"]:
            assert column["image_embeddings"].shape == (4, 384)
            assert all(Path(p).is_file() for p in column["image_paths"])

    zip_path = client.predict(api_name="/export")
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
    assert {"session.json", "log_episode.json", "turn5/column4_4.png"} <= names
    assert sum(n.endswith(".png") for n in names) == 5 * 4 * 4


def test_two_concurrent_sessions_never_see_each_other(fast_server):
    clients = {"a red dress": fast_server.client(), "a blue coat": fast_server.client()}
    views, errors = {}, []

    def run(prompt: str, client: Client) -> None:
        try:
            views[prompt] = [start(client, prompt)]
            views[prompt].append(pick(client, 2))
        except Exception as error:  # reported below, with the prompt
            errors.append((prompt, error))

    threads = [threading.Thread(target=run, args=item) for item in clients.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not errors
    red, blue = views["a red dress"][-1].details, views["a blue coat"][-1].details
    assert red["session_id"] != blue["session_id"]
    assert red["history"][0] == "a red dress" and blue["history"][0] == "a blue coat"
    assert red["turn"] == blue["turn"] == 2
    # One more pick for one browser leaves the other where it was.
    assert pick(clients["a red dress"], 1).details["turn"] == 3
    explanation, _ = clients["a blue coat"].predict(api_name="/explain")
    assert "turn 2" in explanation
    for details in (red, blue):
        assert fast_server.store.episode(details["session_id"])["initial_prompt"] == details["history"][0]


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("", "the prompt is empty"),
        ("   \n\t ", "the prompt is empty"),
        ("x" * 10_000, "the prompt has 10000 characters; keep it under 500"),
        ("🐱🐱✨", "the prompt has no words"),
        ("a naked woman on a beach", "Sorry, I can't create images of sexual or explicit content"),
        ("a b-e-h-e-a-d-e-d knight", "Sorry, I can't create images of graphic violence"),
    ],
)
def test_bad_prompts_get_clear_messages_and_change_nothing(fast_server, prompt, message):
    client = fast_server.client()
    before = fast_server.store.counts()
    with pytest.raises(Exception, match=message):
        start(client, prompt)
    after = fast_server.store.counts()
    assert after["sessions"] == before["sessions"]
    assert after["refusals"] == before["refusals"] + message.startswith("Sorry")


def test_an_emoji_prompt_with_words_works_and_control_characters_are_dropped(fast_server):
    view = start(fast_server.client(), "a 🐱 on a red\x00 t-shirt ✨\u202e \x1b[31mbold\x1b[0m")
    assert view.details["initial_prompt"] == "a 🐱 on a red t-shirt ✨ bold"
    assert all(len(g) == 1 and Path(g[0]["image"]).is_file() for g in view.galleries)


def test_bad_actions_get_clear_messages(fast_server):
    client = fast_server.client()
    with pytest.raises(Exception, match="Start with a prompt first"):
        pick(client, 1)
    start(client, "a grey hat")
    for column, rating, message in [
        (7, None, "column must be a number from 1 to 4"),
        (0, None, "column must be a whole number from 1"),
        (1, 9, "a rating must be 1, 2, 3, 4 or 5"),
    ]:
        with pytest.raises(Exception, match=message):
            pick(client, column, rating)
    with pytest.raises(Exception, match="turn must be a number from 1 to 1"):
        client.predict(4, api_name="/back")
    with pytest.raises(Exception, match="there is no pick to rate yet"):
        client.predict(4, None, api_name="/rate")
    assert pick(client, 1).details["turn"] == 2  # the session survived every bad request


def test_user_and_model_text_is_shown_as_text(fast_server):
    view = start(fast_server.client(), "a dress [click](javascript:alert(1)) <img src=x onerror=alert(1)>")
    assert all("&lt;img" in c and "<img" not in c and "\\[click\\]" in c for c in view.captions if "click" in c)
    assert any("click" in c for c in view.captions)


def test_go_back_branches_into_a_new_logged_session(fast_server):
    client = fast_server.client()
    first = start(client, "a yellow scarf").details
    pick(client, 1)
    pick(client, 2)
    view = View(client.predict(2, api_name="/back"))
    branch = view.details
    assert branch["session_id"] != first["session_id"]
    assert branch["branch_of"] == {"session_id": first["session_id"], "turn": 2} and branch["awaiting_pick"]
    assert branch["turn"] == 2 and len(view.history) == 2
    view = pick(client, 4)
    assert view.details["history"][2] == branch["slate"][3]["prompt"]
    original = fast_server.store.episode(first["session_id"])
    copy = fast_server.store.episode(branch["session_id"])
    assert [t["choice"]["column"] for t in original["turns"][:2]] == [0, 1]
    assert [t["choice"]["column"] for t in copy["turns"][:2]] == [0, 3]
    assert copy["settings"]["branch_of"] == [first["session_id"], 1]
    assert copy["turns"][0]["slate"][0]["image_paths"] == original["turns"][0]["slate"][0]["image_paths"]


def test_favourites(fast_server):
    client = fast_server.client()
    start(client, "a purple bag")
    favourites, details = client.predict(1, 3, api_name="/favourite")
    assert len(favourites) == 1 and "column 3" in favourites[0]["caption"]
    favourites, _ = client.predict(1, 3, api_name="/favourite")  # a second press removes it
    assert favourites == []


def test_without_consent_nothing_of_the_session_is_logged(fast_server):
    client = fast_server.client()
    session_id = start(client, "a white shirt", consent=False).details["session_id"]
    pick(client, 3)
    with pytest.raises(KeyError):
        fast_server.store.episode(session_id)
    with zipfile.ZipFile(client.predict(api_name="/export")) as z:
        assert "session.json" in z.namelist() and "log_episode.json" not in z.namelist()


def test_a_server_restart_loses_nothing_that_was_shown(start_app, tmp_path):
    first = start_app(log_db=tmp_path / "logs.sqlite", images_per_prompt=1)
    client = first.client()
    view = start(client, "a black boot")
    code, shown = view.resume_code, [view.details]
    shown.append(pick(client, 2).details)
    shown.append(pick(client, 3).details)
    client.predict(2, 4, api_name="/favourite")  # column 4 of turn 2
    first.close()

    second = start_app(log_db=tmp_path / "logs.sqlite", images_per_prompt=1)
    client = second.client()
    view = View(client.predict(shown[-1]["session_id"], code, api_name="/resume"))
    assert view.details["history"] == shown[-1]["history"] and view.details["slate"] == shown[-1]["slate"]
    assert view.details["awaiting_pick"] and len(view.history) == 3 and view.consent is True
    assert len(view.favourites) == 1 and "Turn 2, column 4" in view.favourites[0]["caption"]
    assert pick(client, 1).details["turn"] == 4
    assert len(second.store.episode(shown[0]["session_id"])["turns"]) == 4
    with pytest.raises(Exception, match="resume code is missing or wrong"):  # unknown ids get the same answer
        client.predict("0" * 32, code, api_name="/resume")


def test_a_session_id_alone_cannot_act_in_a_session(fast_server, caplog):
    owner, other = fast_server.client(), fast_server.client()
    view = start(owner, "a red scarf")
    session_id, code = view.details["session_id"], view.resume_code
    assert len(code) >= 43 and code not in str(view.details)  # 256 bits, never in what is shown as details
    before = logged(fast_server, session_id)
    for wrong in ("", "0" * 43, code[:-1] + ("A" if code[-1] != "A" else "B")):
        with pytest.raises(Exception, match="resume code is missing or wrong"):
            other.predict(session_id, wrong, api_name="/resume")
        with pytest.raises(Exception, match="Start with a prompt first"):  # the other client has no session
            pick(other, 1)
    assert logged(fast_server, session_id) == before
    assert pick(owner, 2).details["turn"] == 2  # the owner's session went on as it was

    resumed = View(other.predict(session_id, code, api_name="/resume"))  # the code is what grants it
    assert resumed.details["session_id"] == session_id and resumed.details["turn"] == 2
    zip_path = owner.predict(api_name="/export")
    with zipfile.ZipFile(zip_path) as z:
        assert not any(code.encode() in z.read(name) for name in z.namelist())
        episode = z.read("log_episode.json").decode()
    assert str(fast_server.settings.resolved_image_dir()) not in episode and '"turn1/column1_1.png"' in episode
    assert code not in caplog.text


BAD_ARGUMENTS = [
    ("/pick", (1, 2.5), "rating must be a whole number"),
    ("/pick", (1, "x"), "rating must be a whole number, not 'x'"),
    ("/pick", ("x", None), "column must be a whole number, not 'x'"),
    ("/pick", (2.5, None), "column must be a whole number"),
    ("/pick", (5, None), "column must be a number from 1 to 4"),
    ("/rate", (2.5, 1), "rating must be a whole number"),
    ("/rate", ("x", None), "rating must be a whole number, not 'x'"),
    ("/rate", (4, "one"), "turn must be a whole number, not 'one'"),
    ("/rate", (4, 9), "turn must be a number from 1 to 2"),
    ("/back", ("x",), "turn must be a whole number, not 'x'"),
    ("/back", (0,), "turn must be a whole number from 1"),
    ("/favourite", ("x", 1), "turn must be a whole number, not 'x'"),
    ("/favourite", (1, 1.5), "column must be a whole number"),
    ("/favourite", (1, 9), "column must be a number from 1 to 4"),
]


def test_every_api_argument_is_checked_and_a_refusal_stores_nothing(fast_server):
    client = fast_server.client()
    session_id = start(client, "a teal skirt").details["session_id"]
    pick(client, 1)
    before = logged(fast_server, session_id)
    for endpoint, args, message in BAD_ARGUMENTS:
        with pytest.raises(Exception, match=message):
            client.predict(*args, api_name=endpoint)
        assert logged(fast_server, session_id) == before, endpoint
    assert pick(client, 2).details["turn"] == 3  # and the session is still usable


def test_the_page_says_what_the_offline_model_draws_and_when_a_prompt_names_none_of_it(fast_server):
    import json

    page = json.dumps(fast_server.demo.config["components"], default=str)
    assert "The offline model draws ten garments" in page and "a red striped dress on the grass" in page
    client = fast_server.client()
    view = start(client, "a castle at sunset", consent=False)
    assert "knows nothing that" in view.status and "a castle at sunset" in view.status
    assert "knows nothing" not in start(client, "a blue dress", consent=False).status
