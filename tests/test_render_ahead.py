"""Next turns chosen and rendered while a person looks (`pasta.ahead`): a pick shows the same turn it would have
computed, logged only once it is used; interactive work stops the rendering at the next denoising step."""

import time

import numpy as np
import pytest

from pasta import torch_thread
from pasta.agent import Agent
from pasta.app.recorder import SessionRecorder
from pasta.candidates.prefetch import PrefetchingGenerator
from pasta.config import Settings
from pasta.logbook import LogStore
from pasta.policy.loader import load_policy


@pytest.fixture(scope="module")
def parts(embedded_t2i, retrieval, embedded_embedder, tiny_agent_dir):
    settings = Settings.from_env({}, turns=3, generator="retrieval", images_per_prompt=1, agent_dir=str(tiny_agent_dir))
    return settings, embedded_embedder, embedded_t2i, retrieval, load_policy(settings, embedded_embedder).policy


@pytest.fixture(autouse=True)
def drained():
    """Each test leaves no work ahead running (the background lane is first-in, first-out)."""
    yield
    torch_thread.background(lambda: None).result(timeout=300)


def make_agent(parts, render_ahead, recorder=None):
    settings, embedder, t2i, retrieval, policy = parts
    generator = PrefetchingGenerator(retrieval)
    return Agent(settings, embedder, t2i, generator, policy, recorder=recorder, render_ahead=render_ahead)


def wait_until_rendered(session, columns, timeout=120.0):
    """Until every column's next turn is chosen and fully rendered ahead (the background lane's work)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = list(session.ahead.values())
        if len(entries) == columns and all(all(e.turn.images) for e in entries):
            return
        time.sleep(0.1)
    raise AssertionError(f"not rendered ahead in {timeout} s: {len(session.ahead)} turns chosen")


def pixels(turn):
    return [np.asarray(image) for column in turn.images for image in column]


def test_a_pick_shows_the_turn_it_would_have_computed_and_logs_it_only_then(parts, tmp_path):
    with LogStore(tmp_path / "logs.sqlite") as store:
        ahead_agent = make_agent(parts, True, SessionRecorder(store, tmp_path / "images"))
        plain_agent = make_agent(parts, False)
        session = ahead_agent.start("a green shirt", seed=11, consent=True)
        plain = plain_agent.start("a green shirt", seed=11)
        wait_until_rendered(session, 4)
        assert {column for _, column in session.ahead} == {0, 1, 2, 3}
        assert len(store.episode(session.id)["turns"]) == 1  # chosen ahead, not logged: nobody has seen it

        ahead_agent.pick(session, 2, rating=5)
        plain_agent.pick(plain, 2, rating=5)
        got, want = session.current, plain.current
        assert [c.text for c in got.slate_prompts] == [c.text for c in want.slate_prompts]
        assert got.seeds == want.seeds and got.scores == pytest.approx(want.scores)
        assert all(np.array_equal(a, b) for a, b in zip(pixels(got), pixels(want), strict=True))
        assert got.image_embeddings == pytest.approx(want.image_embeddings, abs=1e-6)
        assert got.timings["rendered_ahead"] == 4.0 and "rendered_ahead" not in want.timings
        logged = store.episode(session.id)["turns"]
        assert len(logged) == 2 and [s["prompt"] for s in logged[1]["slate"]] == [c.text for c in got.slate_prompts]
        assert logged[0]["choice"]["column"] == 2 and logged[0]["choice"]["rating"] == 5


def test_a_partly_rendered_turn_renders_only_what_is_missing(parts):
    agent = make_agent(parts, True)
    plain = make_agent(parts, False).start("a red coat", seed=4)
    session = agent.start("a red coat", seed=4)
    wait_until_rendered(session, 4)
    for entry in session.ahead.values():  # as if the pick had come while the second half was rendering
        entry.turn.images[2:] = [[], []]
    rendered, render = [], agent.render
    agent.render = lambda prompts, seeds: rendered.append(list(prompts)) or render(prompts, seeds)
    got = agent.pick(session, 1).current
    want = make_agent(parts, False).pick(plain, 1).current
    assert rendered[0] == [c.text for c in got.slate_prompts[2:]]  # the two missing columns, in one batch
    assert all(np.array_equal(a, b) for a, b in zip(pixels(got), pixels(want), strict=True))


def test_the_last_turn_and_a_branch_have_nothing_ahead(parts):
    agent = make_agent(parts, True)
    session = agent.start("a blue bag", seed=2)
    wait_until_rendered(session, 4)
    agent.pick(session, 0)
    wait_until_rendered(session, 4)
    branched = agent.branch(session, 0)  # another session: the old one's turns ahead are not its
    assert not branched.ahead
    agent.pick(session, 3)
    assert len(session.turns) == 3 and not session.ahead  # the session's last slate: nothing follows it


def test_interactive_work_stops_rendering_ahead_at_the_next_step(embedded_t2i):
    prompts = [f"a {colour} dress" for colour in ("red", "blue", "green", "black")] * 4
    job = torch_thread.background(embedded_t2i.generate, prompts, list(range(16)), 4)  # 64 images: seconds
    deadline = time.monotonic() + 60
    while not job.running() and not job.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert torch_thread.call(lambda: "interactive") == "interactive"
    with pytest.raises(torch_thread.Preempted, match="rendering gave way"):
        job.result(timeout=60)
    assert len(embedded_t2i.generate(prompts[:1], [0], 1)[0]) == 1  # interactive rendering is never stopped


def test_a_hub_pipeline_gives_way_at_its_step_callback():
    from pasta.backends.hub_t2i import _give_way

    assert _give_way(None, 0, 1, {"latents": "x"}) == {"latents": "x"}  # interactive work never stops

    def steps_forever():
        while True:
            _give_way(None, 0, 1, {})
            time.sleep(0.01)

    job = torch_thread.background(steps_forever)
    deadline = time.monotonic() + 60
    while not job.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert torch_thread.call(lambda: 1) == 1
    with pytest.raises(torch_thread.Preempted):
        job.result(timeout=60)
