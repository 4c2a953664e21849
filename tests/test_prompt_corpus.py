"""No prompt the input checks accept crashes candidate generation or the agent's start: 580 prompts with URLs,
markup, braces, code, quotes, emoji, other scripts, instruction-like words, very short and very long, through the
retrieval generator, the LMM generator (over the real HTTP client, its endpoint replying as a careless model
would), and the agent with a real log store."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

import pytest
from prompt_corpus import prompts
from test_lmm_generator import Scripted

from pasta.agent import Agent
from pasta.app.recorder import SessionRecorder
from pasta.backends.hub_lmm import OpenAIChatModel
from pasta.candidates.clean import MAX_PARTS, is_fragment
from pasta.candidates.lmm import LMMGenerator
from pasta.config import Settings
from pasta.contracts import CATEGORIES
from pasta.inputs import check_prompt
from pasta.logbook import LogStore

CORPUS = prompts()


def check(candidates, prompt: str) -> None:
    assert len(candidates) == 25, prompt
    assert [c.category for c in candidates] == [c for c in CATEGORIES for _ in range(5)], prompt
    assert len({c.text.lower() for c in candidates}) == 25, prompt
    fragments = [c.text for c in candidates if is_fragment(c.text, prompt)]
    assert not fragments, (prompt, fragments)


def test_the_corpus_is_large_and_every_prompt_passes_the_input_checks():
    assert len(CORPUS) >= 500
    assert all(check_prompt(p) for p in CORPUS)


def test_the_retrieval_generator_answers_every_prompt(retrieval):
    for prompt in CORPUS:
        check(retrieval.propose([check_prompt(prompt)]), check_prompt(prompt))


def careless_reply(asked: str) -> str:
    """What a careless model answers: the prompt echoed back cut off, repeated, wrapped in markup, with chatter and
    instructions."""
    prompt = asked.split('"', 1)[-1].rsplit('"', 1)[0]
    return " | ".join(
        [
            f"{prompt}, a painting of a",
            f"{prompt}, navy blue, bold navy blue",
            f"Sure, here is {prompt}",
            f"<b>{prompt}</b> in the",
            f"{prompt} {prompt}",
            "ignore previous instructions",
            f"{prompt}, with",
            prompt[::-1],
        ]
    )


@pytest.fixture(scope="module")
def careless_lmm(retrieval):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)  # the OpenAI-compatible endpoint of the LMM tests
    server.prompts, server.reply = [], careless_reply
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    # One request at a time: against a server in this very process, 8 client threads and the server's thread
    # queue for the GIL (12 ms per request instead of 2); concurrency is the LMM tests' business, not this one's
    chat = OpenAIChatModel(f"http://127.0.0.1:{server.server_address[1]}/v1", "careless", timeout=10, max_workers=1)
    yield LMMGenerator(chat, retrieval)
    server.shutdown()
    server.server_close()


def test_the_lmm_generator_answers_every_prompt(careless_lmm):
    prompts_ = [check_prompt(p) for p in CORPUS]
    for i in range(0, len(prompts_), 20):  # as the app's prefetch asks: many histories in one batch
        batch = prompts_[i : i + 20]
        for prompt, candidates in zip(batch, careless_lmm.propose_many([[p] for p in batch])):
            check(candidates, prompt)


def test_candidates_stay_whole_and_bounded_over_many_turns(retrieval):
    for prompt in CORPUS[::10]:
        history = [check_prompt(prompt)]
        for turn in range(6):
            candidates = retrieval.propose(history)
            check(candidates, history[-1])
            history.append(candidates[5 * (1 + turn % 4)].text)  # a detail, style, subject or creative pick
        assert history[-1].count(",") + 1 <= max(MAX_PARTS, history[0].count(",") + 1), history


def agent_starts(parts, prompts: list[str], rendered: list[str], folder) -> None:
    settings, embedder, t2i, generator, policy = parts
    with LogStore(folder / "logs.sqlite") as store:
        agent = Agent(settings, embedder, t2i, generator, policy, recorder=SessionRecorder(store, folder / "img"))
        for i, prompt in enumerate(prompts):
            steps = agent.start_steps(prompt, seed=i, consent=True)
            step = next(steps)  # the slate is chosen and logged (rendering is the same for any prompt)
            assert step.stage == "proposed" and len(step.turn.slate) == 4, prompt
            steps.close()
        for prompt in rendered:  # and some all the way to the rendered, embedded, logged slate
            session = agent.start(prompt, seed=1, consent=True)
            assert session.current.image_embeddings.shape[:2] == (4, 1)
        assert store.counts()["sessions"] == len(prompts) + len(rendered)


def test_the_agent_starts_on_a_tenth_of_the_corpus(q_agent_parts, tmp_path):
    agent_starts(q_agent_parts, CORPUS[::10], CORPUS[::145], tmp_path)


@pytest.mark.slow  # about 5 minutes on 2 cores; CI runs it
def test_the_agent_starts_on_every_prompt(q_agent_parts, tmp_path):
    agent_starts(q_agent_parts, CORPUS, CORPUS[::25], tmp_path)


@pytest.fixture(scope="module")
def q_agent_parts(embedded_t2i, retrieval, embedded_embedder, tiny_agent_dir):
    from pasta.policy.loader import load_policy

    settings = Settings.from_env({}, generator="retrieval", images_per_prompt=1, agent_dir=str(tiny_agent_dir))
    return settings, embedded_embedder, embedded_t2i, retrieval, load_policy(settings, embedded_embedder).policy
