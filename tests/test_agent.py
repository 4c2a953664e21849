"""The PASTA loop on real components: shipped embedded diffusion weights, MiniLM, retrieval candidates."""

import numpy as np
import pytest

from pasta.agent import Agent
from pasta.config import Settings
from pasta.contracts import Candidate
from pasta.inputs import InputError, RefusedError
from pasta.policy.loader import load_policy


@pytest.fixture(scope="module")
def agent(embedded_t2i, retrieval):
    return Agent(Settings.from_env({}, turns=3, generator="retrieval"), None, embedded_t2i, retrieval)


def test_a_session_runs_its_turns_and_records_choices(agent):
    session = agent.start("a red dress", seed=7)
    turn = session.current
    assert len(turn.candidates) == 25 and len(turn.slate) == 4
    assert len({turn.candidates[i].category for i in turn.slate}) == 4  # at most one per category
    assert [len(column) for column in turn.images] == [4, 4, 4, 4]
    side = agent.t2i.config.image_size
    assert turn.images[0][0].size == (side, side)  # the model's own pixels; the app enlarges them to look at
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


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("", "the prompt is empty"),
        ("   \n ", "the prompt is empty"),
        ("x" * 10_000, "keep it under 500"),
        (None, "must be text"),
        (42, "must be text"),
    ],
)
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


# -- the trained-agent path: embeddings, Q-scores, posterior, safety, one action at a time ---------------------


class ScriptedGenerator:
    """A real CandidateGenerator for tests: the retrieval generator's candidates, with one replaced by `text`
    (as a misbehaving LMM might propose it)."""

    name = "scripted"

    def __init__(self, inner, text: str, category: str = "style") -> None:
        self.inner, self.text, self.category = inner, text, category

    def propose(self, history, n=25):
        out = self.inner.propose(history, n)
        i = next(i for i, c in enumerate(out) if c.category == self.category)
        out[i] = Candidate(self.text, self.category, self.name)
        return out


@pytest.fixture(scope="module")
def q_agent(embedded_t2i, retrieval, embedded_embedder, tiny_agent_dir):
    settings = Settings.from_env({}, turns=3, generator="retrieval", images_per_prompt=1, agent_dir=str(tiny_agent_dir))
    loaded = load_policy(settings, embedded_embedder)
    assert loaded.policy.name == "iql+adapt+explore", loaded.notice
    return Agent(settings, embedded_embedder, embedded_t2i, retrieval, loaded.policy)


def test_the_policy_sees_the_state_the_simulator_gives_it(q_agent):
    session = q_agent.start("a red dress", seed=5)
    first = session.current
    assert first.candidate_embeddings.shape == (25, 384) and first.image_embeddings.shape == (4, 1, 384)
    assert first.scores != [-float(i) for i in range(25)]  # Q-values, not the generator's order
    q_agent.pick(session, 1)
    state = q_agent.state(session, session.current.candidate_embeddings, session.current.candidates)
    assert state.turn == 2 and state.history == ["a red dress", first.chosen.text]
    assert state.candidate_categories == [c.category for c in session.current.candidates]
    np.testing.assert_allclose(state.current_embedding, first.candidate_embeddings[first.slate[1]])
    np.testing.assert_allclose(state.chosen_image_embeddings, first.image_embeddings[1].mean(0, keepdims=True))
    assert state.planted_utilities is None  # the simulator's secret has no value in the app
    ((features, column),) = state.history_slates
    assert features.shape == (4, 768) and column == 1
    posterior = q_agent.posterior(session)
    assert posterior.shape == (3,) and abs(posterior.sum() - 1) < 1e-5
    assert not np.allclose(posterior, first.posterior)  # a pick moves the posterior
    assert state.turns == session.max_turns == 3


def test_the_shipped_agents_last_slate_keeps_the_current_prompt(embedded_t2i, retrieval, embedded_embedder):
    """The app's state tells the policy the session's length, so its last slate holds the rephrase; the same
    sessions played without the rule (`WithoutFinalKeep`) differ only there, and leave it out in some of them. The
    shipped agent on its types alone (session estimates off), which leaves the rephrase out of most slates."""
    from user_sim.policies import WithoutFinalKeep

    settings = Settings.from_env({}, turns=3, generator="retrieval", images_per_prompt=1, session_estimate=False)
    shipped = load_policy(settings, embedded_embedder).policy

    def slates(policy, prompt: str, seed: int, picks: tuple[int, int]) -> list[list[str]]:
        agent = Agent(settings, embedded_embedder, embedded_t2i, retrieval, policy)
        session = agent.start(prompt, seed=seed)
        for column in picks:
            agent.pick(session, column)
        return [[c.category for c in t.slate_prompts] for t in session.turns]

    left_out = 0
    for prompt, seed, picks in (("a red dress", 0, (1, 0)), ("a blue coat", 1, (2, 1)), ("a striped shirt", 0, (1, 0))):
        with_rule, without = (
            slates(shipped, prompt, seed, picks),
            slates(WithoutFinalKeep(shipped), prompt, seed, picks),
        )
        assert with_rule[:2] == without[:2]  # the same slates before the last turn
        assert "rephrase" in with_rule[2]
        left_out += "rephrase" not in without[2]
    assert left_out  # the rule decides something: without it, some last slates leave the current prompt out


def test_unsafe_candidates_never_reach_the_slate_and_are_logged(q_agent, tmp_path):
    from pasta.app.recorder import SessionRecorder
    from pasta.logbook import LogStore

    generator = ScriptedGenerator(q_agent.generator, "a red dress, gore and severed heads")
    with LogStore(tmp_path / "logs.sqlite") as store:
        agent = Agent(
            q_agent.settings,
            q_agent.embedder,
            q_agent.t2i,
            generator,
            q_agent.policy,
            recorder=SessionRecorder(store, tmp_path / "images"),
        )
        session = agent.start("a red dress", seed=1)  # no consent: only the refusal is logged
        assert [c.text for c in session.current.refused] == ["a red dress, gore and severed heads"]
        assert len(session.current.candidates) == 24
        assert all("gore" not in c.text for c in session.current.slate_prompts)
        assert store.counts()["refusals"] == 1 and store.counts()["sessions"] == 0
        with pytest.raises(RefusedError, match="graphic violence"):
            agent.start("a gory battlefield")
        assert store.counts()["refusals"] == 2


def test_one_action_at_a_time_and_an_interrupted_turn_can_be_continued(q_agent):
    session = q_agent.start("a blue coat", seed=2)
    steps = q_agent.pick_steps(session, 0)
    assert next(steps).stage == "proposed"
    with pytest.raises(InputError, match="still working on your last request"):
        q_agent.pick(session, 1)
    steps.close()  # the page closed while the next slate rendered
    assert len(session.turns) == 1 and not session.awaiting_pick
    with pytest.raises(InputError, match="already has a pick"):
        q_agent.pick(session, 1)
    last = list(q_agent.continue_steps(session))[-1]
    assert last.stage == "done" and len(session.turns) == 2 and session.awaiting_pick


def test_a_finished_session_continues_for_more_turns(q_agent):
    session = q_agent.start("a grey hat", seed=3)
    for column in (0, 1, 2):
        q_agent.pick(session, column)
    assert session.finished and len(session.turns) == 3
    list(q_agent.continue_steps(session))
    assert session.max_turns == 6 and len(session.turns) == 4 and session.awaiting_pick


class FailingGenerator:
    name = "failing"

    def propose(self, history, n=25):
        raise RuntimeError("the generator broke")


def test_a_shown_slate_is_logged_before_rendering_and_is_the_slate_a_continue_renders(q_agent, tmp_path):
    from pasta.app.recorder import SessionRecorder
    from pasta.logbook import LogStore

    with LogStore(tmp_path / "logs.sqlite") as store:
        agent = Agent(
            q_agent.settings,
            q_agent.embedder,
            q_agent.t2i,
            q_agent.generator,
            q_agent.policy,
            recorder=SessionRecorder(store, tmp_path / "images"),
        )
        session = agent.start("a green scarf", seed=4, consent=True)
        steps = agent.pick_steps(session, 2)
        shown = next(steps).turn  # the slate's prompts are on screen; no image yet
        logged = store.episode(session.id)["turns"][1]
        assert [s["prompt"] for s in logged["slate"]] == [c.text for c in shown.slate_prompts]
        assert [s["seed"] for s in logged["slate"]] == shown.seeds
        assert all(s["image_paths"] is None for s in logged["slate"])
        steps.close()  # the page closed while it rendered
        list(agent.continue_steps(session))
        assert session.current.slate_prompts == shown.slate_prompts and session.current.seeds == shown.seeds
        logged = store.episode(session.id)["turns"]
        assert len(logged) == 2 and all(len(s["image_paths"]) == 1 for s in logged[1]["slate"])
        assert logged[1]["slate"][0]["image_embeddings"].shape == (1, 384)

        resumed = agent.resume(session.id, session.resume_token)
        assert resumed.current.slate_prompts == shown.slate_prompts and resumed.awaiting_pick


def test_a_failed_start_leaves_no_session_behind(q_agent, tmp_path):
    from pasta.app.recorder import SessionRecorder
    from pasta.logbook import LogStore

    with LogStore(tmp_path / "logs.sqlite") as store:
        agent = Agent(
            q_agent.settings,
            q_agent.embedder,
            q_agent.t2i,
            FailingGenerator(),
            q_agent.policy,
            recorder=SessionRecorder(store, tmp_path / "images"),
        )
        with pytest.raises(RuntimeError, match="the generator broke"):
            agent.start("a red dress", consent=True)
        assert store.counts()["sessions"] == 0 and store.counts()["turns"] == 0


def test_a_session_logged_before_resume_tokens_opens_once_for_the_browser_that_holds_it(q_agent, tmp_path, monkeypatch):
    from pasta import logbook
    from pasta.app.recorder import SessionRecorder
    from pasta.logbook import LogStore

    path = tmp_path / "logs.sqlite"
    monkeypatch.setattr(logbook, "MIGRATIONS", logbook.MIGRATIONS[:1])  # the log store as older versions wrote it
    with LogStore(path) as store:
        old = Agent(
            q_agent.settings,
            q_agent.embedder,
            q_agent.t2i,
            q_agent.generator,
            q_agent.policy,
            recorder=SessionRecorder(store, tmp_path / "images"),
        )
        monkeypatch.setattr(
            store, "start_session", lambda *a, resume_token=None, **k: LogStore.start_session(store, *a, **k)
        )
        session_id = old.start("a blue coat", seed=3, consent=True).id
    monkeypatch.undo()

    with LogStore(path) as store:
        agent = Agent(
            q_agent.settings,
            q_agent.embedder,
            q_agent.t2i,
            q_agent.generator,
            q_agent.policy,
            recorder=SessionRecorder(store, tmp_path / "images"),
        )
        with pytest.raises(InputError, match="resume code is missing or wrong"):
            agent.resume(session_id, None)  # an API client with the id alone
        session = agent.resume(session_id, None, from_browser=True)  # the browser that started it
        assert session.id == session_id and session.awaiting_pick
        with pytest.raises(InputError, match="resume code is missing or wrong"):
            agent.resume(session_id, None, from_browser=True)  # from now on it has a token
        assert agent.resume(session_id, session.resume_token).id == session_id
