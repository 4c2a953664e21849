"""Simulated users and rollouts on the real embedding world (shipped MiniLM embeddings of every tuple)."""

import numpy as np
import pytest

from pasta.contracts import CATEGORIES
from pasta.policy.slate import LMMOrderPolicy, RandomPolicy
from user_sim.rollout import play, run_episode
from user_sim.users import make_users, planted_population
from user_sim.world import AXES, CATEGORY_AXES, EmbeddingWorld


@pytest.fixture(scope="module")
def world():
    return EmbeddingWorld()


def test_world_covers_every_tuple_with_unit_embeddings(world):
    assert len(world) == 10 * 10 * 4 * 7 * 4
    assert np.allclose(np.linalg.norm(world.embeddings, axis=1), 1, atol=1e-2)
    i = world.index_of((3, 0, 1, 4, 0))  # dress, red, striped, sky, photo
    assert world.captions[i] == "a photo of a red striped dress against a blue sky"
    assert world.attributes(i) == {
        "garment": "dress",
        "colour": "red",
        "pattern": "striped",
        "background": "sky",
        "style": "photo",
    }


def test_proposals_edit_the_attributes_their_category_names(world):
    rng = np.random.default_rng(0)
    current = world.index_of((0, 1, 0, 0, 0))
    out = world.propose(current, rng)
    assert len(out) == 25 and [c.candidate.category for c in out] == [c for c in CATEGORIES for _ in range(5)]
    for c in out:
        changed = {AXES[a] for a in np.nonzero(world.tuples[c.index] != world.tuples[current])[0]}
        axes = set(CATEGORY_AXES[c.candidate.category])
        if not axes:
            assert not changed
        else:
            assert changed & axes and len(changed - axes) <= 1


def test_users_choose_by_planted_utility(world):
    types = planted_population(2, seed=0)
    user = make_users(world, types, 1, seed=0, temperature=0.05)[0]
    columns = [0, 1, 2, 3]
    best = int(np.argmax(user.utilities[columns]))
    rng = np.random.default_rng(0)
    picks = [user.choose(columns, rng) for _ in range(200)]
    assert np.mean(np.array(picks) == best) > 0.8
    assert 1 <= user.rate(columns[best], rng) <= 5


def test_rollouts_are_pure_functions_of_their_seeds(world):
    users = make_users(world, planted_population(4, seed=0), 6, seed=1)
    local = play(LMMOrderPolicy(), world, users, list(range(6)))
    again = [run_episode(LMMOrderPolicy(), u, world, seed=i) for i, u in enumerate(users)]
    for a, b in zip(local, again, strict=True):
        assert [s.choice for s in a.turns] == [s.choice for s in b.turns]
        assert np.array_equal(a.utilities(), b.utilities())
    episode = local[0]
    assert len(episode.turns) == 5
    assert all(len(s.slate) == 4 and len({s.candidates[i].category for i in s.slate}) == 4 for s in episode.turns)
    # each turn expands the prompt chosen in the turn before
    assert all(b.prompt_index == a.chosen_index for a, b in zip(episode.turns, episode.turns[1:], strict=False))


def test_choosing_raises_utility_over_turns(world):
    users = make_users(world, planted_population(4, seed=0), 200, seed=2)
    utilities = np.stack([run_episode(RandomPolicy(), u, world, i).utilities() for i, u in enumerate(users)])
    assert utilities[:, -1].mean() > utilities[:, 0].mean()


def test_planted_reference_with_inferred_type(world):
    """With one planted type there is nothing to infer: the reference equals the planted model's own accuracy.
    With several, inferring the type from 4 turns can only lose accuracy on average, and not all of it."""
    from user_sim.evaluate_user_model import planted_inferred_type_accuracy

    for n_types in (1, 4):
        types = planted_population(n_types, seed=3)
        users = make_users(world, types, 150, seed=4)
        episodes = [run_episode(RandomPolicy(0), u, world, seed=i) for i, u in enumerate(users)]
        tables = np.stack([t.utility_table(world) for t in types])
        planted = np.mean([np.argmax(s.column_utilities) == s.choice for e in episodes for s in e.turns])
        inferred = planted_inferred_type_accuracy(episodes, tables, users[0].temperature)
        if n_types == 1:
            assert inferred == pytest.approx(planted)
        else:
            assert planted - 0.1 < inferred < planted + 0.02


def test_linear_ceiling_is_exact_for_linear_types_and_close_below_for_attribute_types(world):
    """A type that is a pure embedding direction is linear, so its ceiling table is itself; attribute weights are
    not linear in the embedding, so the best linear table explains most but not all of them."""
    from user_sim.evaluate_user_model import known_type_accuracy, linear_ceiling_tables

    types = planted_population(4, seed=3)
    for t in types[:2]:
        t.attribute_weights = [np.zeros_like(w) for w in t.attribute_weights]
    tables = np.stack([t.utility_table(world) for t in types])
    linear = linear_ceiling_tables(world, tables)
    r2 = 1 - (tables - linear).var(1) / tables.var(1)
    assert np.all(r2[:2] > 0.999) and np.all((0.9 < r2[2:]) & (r2[2:] < 0.999))

    users = make_users(world, types, 150, seed=4)
    episodes = [run_episode(RandomPolicy(0), u, world, seed=i) for i, u in enumerate(users)]
    planted = np.mean([np.argmax(s.column_utilities) == s.choice for e in episodes for s in e.turns])
    assert known_type_accuracy(episodes, tables) == pytest.approx(planted)
    assert known_type_accuracy(episodes, linear) <= planted + 0.02


class Shapes:
    """A tiny `AttributeWorld`: the simulator takes any world whose tuples it can enumerate."""

    name = "shapes"
    attribute_axes = {"shape": ("circle", "square", "star"), "colour": ("red", "blue")}
    category_axes = {"rephrase": (), "detail": ("colour",), "style": ("colour",), "subject": ("shape",), "creative": ()}

    def canonical_caption(self, values: dict[str, str]) -> str:
        return f"a {values['colour']} {values['shape']}"


def test_the_simulator_lives_in_any_attribute_world(tmp_path):
    from pasta.backends.minilm import shared_minilm

    world = EmbeddingWorld(shared_minilm().embed, cache_dir=tmp_path, world=Shapes())
    assert len(world) == 6 and world.captions[:2] == ["a red circle", "a blue circle"]
    assert world.attributes(world.index_of((2, 1))) == {"shape": "star", "colour": "blue"}
    assert np.allclose(np.linalg.norm(world.embeddings, axis=1), 1, atol=1e-3)
    assert list(tmp_path.glob("world-*.npy"))  # embedded once, cached
    out = world.propose(world.index_of((0, 0)), np.random.default_rng(0), n=10)
    subjects = [c for c in out if c.candidate.category == "subject"]
    assert {world.attributes(c.index)["shape"] for c in subjects} == {"square", "star"}
    assert all(world.attributes(c.index)["colour"] == "red" for c in subjects)
    users = make_users(world, planted_population(2, seed=0, sizes=world.sizes), 3, seed=1)
    episode = run_episode(LMMOrderPolicy(), users[0], world, seed=0, turns=2, n_candidates=10, slate_size=4)
    assert len(episode.turns) == 2


def test_simulated_logs_hold_only_texts_whose_embeddings_the_policy_saw(world, tmp_path):
    """Retraining from simulated logs embeds the logged texts: they must be the captions behind the vectors the
    policy was shown (rephrase candidates once carried a ', version k' suffix that embedded elsewhere)."""
    from pasta.logbook import LogStore
    from pasta.policy.episodes import TextEmbeddingCache, read_episodes
    from user_sim.store import write_episodes

    users = make_users(world, planted_population(4, seed=0), 4, seed=1)
    episodes = play(RandomPolicy(3), world, users, list(range(4)))
    with LogStore(tmp_path / "sim.sqlite") as store:
        write_episodes(store, episodes, world)
        logged = list(store.episodes(source="simulator"))

    def unknown(texts):
        raise AssertionError(f"texts the simulator never embedded: {texts[:3]}")

    read = read_episodes(logged, TextEmbeddingCache(unknown, known=world.known_text_embeddings()))
    for episode, played in zip(read, episodes, strict=True):
        for turn, step in zip(episode.turns, played.turns, strict=True):
            shown = world.embeddings[step.column_indices]
            assert np.allclose(turn.text_embeddings, shown)


def test_posterior_mass_on_planted_types_when_fewer_types_are_learned():
    """K chosen below the planted count (e.g. `--ks 1 2` on 4 planted types) once crashed the evaluation."""
    from pasta.policy.user_model import ChoiceData
    from user_sim.evaluate_user_model import posterior_mass_on_planted

    class OneType:  # the posterior of a K = 1 model: all mass on its one type
        def posterior(self, data):
            return np.ones((data.n_users, 1))

    data = ChoiceData(np.zeros((6, 4, 2), np.float32), np.zeros(6, np.int64), np.repeat(np.arange(3), 2))
    mass = posterior_mass_on_planted(OneType(), data, np.tile([0, 1], 3), np.array([0, 2, 3]), np.array([2]), 1)
    assert mass.tolist() == [0.0, 1.0, 0.0]  # the one learned type stands for planted type 2
