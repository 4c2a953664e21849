"""Candidates proposed ahead of a pick: the pick uses them, the other columns' are dropped, misses still work."""

import pytest

from pasta.agent import Agent
from pasta.candidates.prefetch import PrefetchingGenerator
from pasta.config import Settings


class Counting:
    """The real retrieval generator, counting how often it is asked."""

    def __init__(self, generator):
        self.generator, self.calls, self.name = generator, [], generator.name

    def propose(self, history, n=25):
        self.calls.append(list(history))
        return self.generator.propose(history, n)


class Batching(Counting):
    """... that also proposes for several histories in one call, as the LMM generator does."""

    def __init__(self, generator):
        super().__init__(generator)
        self.batches = []

    def propose_many(self, histories, n=25):
        self.batches.append([list(h) for h in histories])
        return [self.generator.propose(h, n) for h in histories]


def settle(prefetching):
    for future in list(prefetching._ahead.values()):
        if not future.cancelled():
            future.exception(timeout=60)


def test_a_prefetched_history_is_answered_without_asking_again(retrieval):
    counting = Counting(retrieval)
    ahead = PrefetchingGenerator(counting)
    ahead.prefetch([["a red dress"], ["a blue coat"]], n=25)
    settle(ahead)
    assert len(counting.calls) == 2
    got = ahead.propose(["a red dress"], 25)
    assert len(got) == 25 and len(counting.calls) == 2 and (ahead.hits, ahead.misses) == (1, 0)
    assert [c.text for c in got] == [c.text for c in retrieval.propose(["a red dress"], 25)]
    ahead.propose(["a red dress"], 25)  # used once: the next ask proposes afresh
    ahead.propose(["a red dress"], 10)  # another n is another proposal
    assert (ahead.hits, ahead.misses) == (1, 2) and len(counting.calls) == 4


def test_a_batching_generator_proposes_the_likeliest_history_alone_then_the_rest_in_one_call(retrieval):
    from pasta import torch_thread

    batching = Batching(retrieval)
    ahead = PrefetchingGenerator(batching)
    gate = torch_thread.background(lambda: None)  # keep the queue's order: the batch cannot start before this
    ahead.prefetch([["a red dress"], ["a blue coat"], ["a shoe"], ["a hat"], ["a red dress"]])
    ahead.forget([["a hat"]])  # cancelled before its batch starts: left out of it
    gate.result(timeout=60)
    settle(ahead)
    assert batching.batches == [[["a red dress"]], [["a blue coat"], ["a shoe"]]] and not batching.calls
    assert [c.text for c in ahead.propose(["a blue coat"])] == [c.text for c in retrieval.propose(["a blue coat"])]
    assert (ahead.hits, ahead.misses) == (1, 0)


def test_forget_and_capacity_drop_proposals(retrieval):
    ahead = PrefetchingGenerator(Counting(retrieval), capacity=2)
    ahead.prefetch([["a"], ["b"], ["c"]])
    assert [k[0] for k in ahead._ahead] == [("b",), ("c",)]
    ahead.forget([["b"]])
    assert [k[0] for k in ahead._ahead] == [("c",)]


def test_bad_histories_still_fail_clearly(retrieval):
    ahead = PrefetchingGenerator(retrieval)
    with pytest.raises(TypeError, match="non-empty list of prompt strings"):
        ahead.propose([], 25)


def test_the_agent_prefetches_every_column_and_the_pick_uses_its_own(embedded_t2i, retrieval):
    counting = Counting(retrieval)
    ahead = PrefetchingGenerator(counting)
    agent = Agent(Settings.from_env({}, turns=3, generator="retrieval"), None, embedded_t2i, ahead)
    session = agent.start("a green shirt", seed=5)
    turn = session.current
    settle(ahead)
    assert len(ahead._ahead) == 4  # one proposal per column's next history
    assert turn.timings["proposed_ahead"] == 0.0
    agent.pick(session, 2)
    assert session.current.timings["proposed_ahead"] == 1.0
    assert ["a green shirt", turn.slate_prompts[2].text] in counting.calls
    assert all(len(history) == 3 for (history, _) in ahead._ahead)  # the other columns' proposals were dropped
    settle(ahead)
    agent.pick(session, 0)
    assert not ahead._ahead  # the last slate of the session: no next turn to propose for
    agent.pick(session, 1)
    assert session.finished and ahead.hits == 2
