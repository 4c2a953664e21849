"""The PASTA loop on real components: shipped embedded diffusion weights, MiniLM, retrieval candidates."""

import pytest

from pasta.agent import Agent, InputError
from pasta.config import Settings


@pytest.fixture(scope="module")
def agent(embedded_t2i, retrieval):
    return Agent(Settings.from_env({}, turns=3, generator="retrieval"), None, embedded_t2i, retrieval)


def test_a_session_runs_its_turns_and_records_choices(agent):
    session = agent.start("a red dress", seed=7)
    turn = session.current
    assert len(turn.candidates) == 25 and len(turn.slate) == 4
    assert len({turn.candidates[i].category for i in turn.slate}) == 4  # at most one per category
    assert [len(column) for column in turn.images] == [4, 4, 4, 4]
    assert turn.images[0][0].size == (256, 256)
    agent.pick(session, 2, rating=4)
    assert session.turns[0].choice == 2 and session.turns[0].rating == 4
    assert session.history() == ["a red dress", turn.slate_prompts[2].text]
    assert session.current.prompt == turn.slate_prompts[2].text
    agent.pick(session, 0)
    agent.pick(session, 1)
    assert len(session.turns) == 3 and session.current.choice == 1  # the last pick ends the session
    assert len(session.history()) == 4


def test_same_seed_same_images(agent):
    a = agent.start("a blue coat", seed=3)
    b = agent.start("a blue coat", seed=3)
    assert a.current.seeds == b.current.seeds
    assert a.current.images[0][0].tobytes() == b.current.images[0][0].tobytes()


@pytest.mark.parametrize(("prompt", "message"), [
    ("", "the prompt is empty"), ("   \n ", "the prompt is empty"), ("x" * 10_000, "keep it under 500"),
    (None, "must be text"), (42, "must be text"),
])
def test_bad_prompts_get_clear_errors(agent, prompt, message):
    with pytest.raises(InputError, match=message):
        agent.start(prompt)


def test_bad_picks_change_nothing(agent):
    session = agent.start("a cat", seed=1)
    before = (len(session.turns), session.current.choice)
    for column, rating in [(4, None), (-1, None), ("1", None), (0, 6), (0, 0)]:
        with pytest.raises(InputError):
            agent.pick(session, column, rating)
    assert (len(session.turns), session.current.choice) == before


def test_emoji_prompt_works(agent):
    session = agent.start("a 🐱 on a red t-shirt ✨", seed=2)
    assert len(session.current.slate) == 4
