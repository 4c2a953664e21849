"""One policy state, built once: the live agent, the simulator and IQL's training data see the same state."""

import numpy as np
import pytest

from pasta.policy.iql import episode_states
from pasta.policy.qnet import QNetConfig, state_features
from pasta.policy.slate import LMMOrderPolicy, posterior_from_state
from pasta.policy.state import PolicyState, ShownSlate
from pasta.policy.user_model import UserModel, UserModelConfig, column_features
from user_sim.evaluate_agents import logged_episode
from user_sim.rollout import policy_state, run_episode
from user_sim.users import make_users, planted_population
from user_sim.world import EmbeddingWorld, SimCandidate


def unit(rng, *shape):
    x = rng.normal(size=(*shape, 8)).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_the_state_follows_the_picks():
    rng = np.random.default_rng(0)
    initial, texts, images = unit(rng), unit(rng, 2, 4), unit(rng, 2, 4, 3)
    shown = [ShownSlate.of(texts[0], images[0], 1), ShownSlate.of(texts[1], images[1], 3)]
    state = PolicyState.build(initial, shown, seed=7, history=["a", "b", "c"])
    assert state.turn == 2 and state.seed == 7 and state.history == ["a", "b", "c"]
    np.testing.assert_array_equal(state.initial_embedding, initial)
    np.testing.assert_array_equal(state.current_embedding, texts[1][3])
    np.testing.assert_allclose(state.chosen_image_embeddings, [images[0][1].mean(0), images[1][3].mean(0)])
    assert [c for _, c in state.history_slates] == [1, 3]
    np.testing.assert_allclose(state.history_slates[0][0], column_features(texts[0], images[0]))
    first = PolicyState.build(initial, [], seed=7)
    assert first.turn == 0 and first.chosen_image_embeddings.shape == (0, 8)
    np.testing.assert_array_equal(first.current_embedding, initial)
    blind = PolicyState.build(None, [], seed=1, turn=3, history=["x"])  # an agent without an embedder
    assert blind.turn == 3 and blind.initial_embedding is None and blind.history_slates == []


def test_shown_slates_take_means_or_nothing_for_images_and_check_shapes():
    rng = np.random.default_rng(1)
    texts = unit(rng, 4)
    assert ShownSlate.of(texts, None, 0).image_embeddings.shape == (4, 1, 8)  # prompts stand in for images
    assert ShownSlate.of(texts, texts, 0).image_embeddings.shape == (4, 1, 8)  # means
    with pytest.raises(ValueError, match="do not match"):
        ShownSlate.of(texts, unit(rng, 3), 0)
    with pytest.raises(ValueError, match="not a column"):
        ShownSlate.of(texts, None, 4)


def test_the_simulator_and_iql_see_the_same_states():
    world = EmbeddingWorld()
    user = make_users(world, planted_population(3, seed=0), 1, seed=2)[0]
    episode = run_episode(LMMOrderPolicy(), user, world, seed=3)
    qnet = QNetConfig(embedding_dim=world.embeddings.shape[1], n_types=3, horizon=5)
    model = UserModel(2 * qnet.embedding_dim, UserModelConfig(n_types=3))
    from_iql = episode_states(logged_episode(world, episode), model, qnet)
    history = [episode.initial_index] + [s.chosen_index for s in episode.turns]
    for t, step in enumerate(episode.turns):
        proposed = [SimCandidate(i, c) for i, c in zip(step.candidate_indices, step.candidates, strict=True)]
        state = policy_state(world, user, episode.seed, history[: t + 1], proposed, t, episode.turns[:t])
        expected = state_features(
            qnet,
            state.initial_embedding,
            state.current_embedding,
            state.chosen_image_embeddings,
            state.turn,
            posterior_from_state(model, state),
        )
        np.testing.assert_allclose(from_iql[t], expected, rtol=1e-6)
    assert len(from_iql) == len(episode.turns) + 1
