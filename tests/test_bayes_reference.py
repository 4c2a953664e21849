"""The Bayesian reference (`user_sim.bayes_reference`): the posterior over hypotheses about the person from the
session's picks, on the real embedding world, for every kind of population it holds."""

import numpy as np
import pytest

from pasta.policy.slate import LMMOrderPolicy
from pasta.policy.state import PolicyState
from pasta.policy.user_model import column_features
from user_sim.bayes_reference import BayesPolicy
from user_sim.populations import FAMILIES, FAMILY_UTILITIES, population, stack_params
from user_sim.rollout import play, run_episode
from user_sim.world import EmbeddingWorld


@pytest.fixture(scope="module")
def world():
    return EmbeddingWorld()


def _final(policy, world, users) -> float:
    return float(np.mean([e.utilities()[-1] for e in play(policy, world, users, list(range(len(users))))]))


def test_a_familys_utility_of_many_people_at_once_is_each_persons_own_table(world):
    """The hypotheses the reference weighs are computed by the same function as the simulated people's tables."""
    start = 1234
    for family in FAMILIES:
        people = [u for u in population("mixture").users(world, 40, seed=6) if u.family == family][:3]
        stacked = FAMILY_UTILITIES[family](stack_params([u.params for u in people]), world.tuples, world.tuples[start])
        assert stacked.shape == (len(people), len(world))
        for row, person in zip(stacked, people, strict=True):
            assert np.array_equal(row, person.for_session(world, start).utilities)


def test_the_reference_learns_a_target_seekers_target_from_the_picks(world):
    """Exact posterior over (target, weights): a person who picked one garment out of four columns that differ only
    in garment makes that garment the likeliest target (about 0.1 / (0.1 + 0.9 / 4)); it plays target seekers
    better than LMM order, and refuses prompts that are not tuples of the world."""
    policy = BayesPolicy(population("target"), world, n_weights=2, samples=2000)
    columns = [world.index_of([g, 0, 0, 0, 0]) for g in (1, 2, 3, 4)]
    E = world.embeddings
    state = PolicyState(turn=1, seed=0, planted_temperature=0.3, initial_embedding=E[columns[0]])
    state.history_slates = [(column_features(E[columns], None), 2)]  # garment 3 picked
    (rows,), p = policy.posterior(state)
    shares = np.bincount(world.tuples[rows // 2, 0], weights=p, minlength=10)  # prior 0.1 each
    assert np.isclose(p.sum(), 1.0) and shares.argmax() == 3 and 0.2 < shares[3] < 0.45

    users = population("target").users(world, 10, seed=4)
    assert _final(policy, world, users) > _final(LMMOrderPolicy(), world, users)
    state.history_slates = [(column_features(E[columns] + 1.0, None), 0)]
    with pytest.raises(ValueError, match="only in the simulator's world"):
        policy.posterior(state)
    with pytest.raises(ValueError, match="first prompt"):
        policy.posterior(PolicyState(turn=0, seed=0, planted_temperature=0.3))


def test_the_reference_finds_a_planted_persons_type_and_a_mixtures_family(world):
    """Planted: the hypotheses are the types themselves, and a few picks single out the person's. Mixture: every
    family's hypotheses with the family's share of the prior; a small-steps person's picks move the posterior to
    that family."""
    planted = BayesPolicy(population("planted"), world)
    user = population("planted").users(world, 1, seed=8)[0]
    episode = run_episode(planted, user, world, seed=3)
    E = world.embeddings
    state = PolicyState.build(E[episode.initial_index], [], seed=3, turn=5, turns=5)
    state.history_slates = [(column_features(E[t.column_indices], None), t.choice) for t in episode.turns]
    state.planted_temperature = user.temperature
    (rows,), p = planted.posterior(state)
    assert p[list(rows).index(user.type_index)] > 0.9

    mixture = BayesPolicy(population("mixture"), world, per_family=512)
    assert [h.family for h in mixture.hypotheses] == list(FAMILIES)
    prior = np.concatenate([np.full(h.size, h.log_prior) for h in mixture.hypotheses])
    assert np.isclose(np.exp(prior).sum(), 1.0)
    person = next(u for u in population("mixture").users(world, 40, seed=9) if u.family == "small-steps")
    episode = run_episode(mixture, person, world, seed=5)
    state.initial_embedding = E[episode.initial_index]
    state.history_slates = [(column_features(E[t.column_indices], None), t.choice) for t in episode.turns]
    rows, p = mixture.posterior(state)
    by_family = np.split(p, np.cumsum([len(r) for r in rows])[:-1])
    assert float(by_family[FAMILIES.index("small-steps")].sum()) > 0.5


def test_the_reference_plays_every_family_at_least_as_well_as_lmm_order(world):
    for name in ("small-steps", "interaction"):
        users = population(name).users(world, 12, seed=4)
        assert _final(BayesPolicy(population(name), world, per_family=1024), world, users) > _final(
            LMMOrderPolicy(), world, users
        )


def test_looking_a_turn_ahead_values_what_each_pick_would_reach(world):
    """bayes-ahead: where a pick can go next is the tuple and every tuple one attribute away; before the last turn
    it shows a valid slate (one column per category) that can differ from the myopic one, on the last turn the
    same slate; it plays target seekers better than LMM order."""
    myopic = BayesPolicy(population("target"), world, n_weights=2)
    ahead = BayesPolicy(population("target"), world, n_weights=2, ahead=True)
    assert ahead.name == "bayes-ahead"
    start = world.index_of([3, 2, 1, 0, 2])
    reach = ahead._reach(start)
    assert len(set(reach.tolist())) == len(reach) == 1 + sum(n - 1 for n in world.sizes)
    assert ((world.tuples[reach] != world.tuples[start]).sum(1) <= 1).all()

    users = population("target").users(world, 12, seed=4)
    played = {p.name: play(p, world, users, list(range(12))) for p in (myopic, ahead)}
    early = [
        (a.slate, b.slate)
        for a, b in zip(*([t for e in played[name] for t in e.turns[:-1]] for name in ("bayes", "bayes-ahead")))
    ]
    assert any(a != b for a, b in early)
    for episode in played["bayes-ahead"]:
        for turn in episode.turns:
            categories = [turn.candidates[i].category for i in turn.slate]
            assert len(turn.slate) == 4 and len(set(categories)) == 4
    finals = {name: np.mean([e.utilities()[-1] for e in eps]) for name, eps in played.items()}
    assert finals["bayes-ahead"] > _final(LMMOrderPolicy(), world, users)
