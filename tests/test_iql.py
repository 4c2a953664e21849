"""The Q-network, IQL and the slate policies on real (small) simulated data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pasta.contracts import CATEGORIES, Candidate
from pasta.policy.episodes import LoggedEpisode, LoggedTurn
from pasta.policy.iql import (
    IQLConfig,
    Transitions,
    TwinQ,
    expectile_loss,
    train_iql,
    transitions,
)
from pasta.policy.qnet import QNetConfig, action_dim, action_features, state_dim, state_features
from pasta.policy.slate import GreedyMyopicPolicy, QPolicy
from pasta.policy.state import PolicyState, ShownSlate
from pasta.policy.user_model import UserModel, UserModelConfig

D, K = 8, 2


def small_config(**kw) -> IQLConfig:
    return IQLConfig(qnet=QNetConfig(embedding_dim=D, n_types=K, horizon=3, hidden=32), batch_size=32, **kw)


def unit(rng, *shape) -> np.ndarray:
    x = rng.normal(size=(*shape, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def episodes(rng, n: int, turns: int = 3, rated: bool = False) -> list[LoggedEpisode]:
    out = []
    for _ in range(n):
        ts = []
        for _ in range(turns):
            E = unit(rng, 4)
            ts.append(
                LoggedTurn(E, E, list(CATEGORIES[:4]), int(rng.integers(4)), int(rng.integers(1, 6)) if rated else None)
            )
        out.append(LoggedEpisode(unit(rng), ts))
    return out


@pytest.fixture(scope="module")
def user_model() -> UserModel:
    torch.manual_seed(0)
    return UserModel(2 * D, UserModelConfig(n_types=K))


def test_expectile_loss_is_asymmetric():
    up, down = torch.tensor([1.0]), torch.tensor([-1.0])
    assert expectile_loss(up, 0.7).item() == pytest.approx(0.7)
    assert expectile_loss(down, 0.7).item() == pytest.approx(0.3)


def test_feature_shapes_and_empty_history():
    c = QNetConfig(embedding_dim=D, n_types=K, horizon=3)
    rng = np.random.default_rng(0)
    s = state_features(c, unit(rng), unit(rng), np.zeros((0, D), np.float32), turn=7, posterior=np.full(K, 0.5))
    assert s.shape == (state_dim(c),) and s[3 * D + 2] == 1.0  # turn past the horizon clips to the last slot
    a = action_features(unit(rng, 5), ["style"] * 5, np.zeros((5, K)))
    assert a.shape == (5, action_dim(c))


def test_transitions_one_per_turn_with_terminal_flags_and_ratings(user_model):
    rng = np.random.default_rng(1)
    cfg = small_config()
    data = transitions(episodes(rng, 4, turns=3, rated=True) + [LoggedEpisode(unit(rng), [])], user_model, cfg)
    assert len(data) == 12
    assert data.dones.tolist() == [0, 0, 1] * 4
    assert set(np.unique(data.rewards)) <= {-2.0, -1.0, 0.0, 1.0, 2.0}  # (rating - 3) * rating_scale
    # the next state of turn t is the state of turn t+1
    np.testing.assert_array_equal(data.next_states[0], data.states[1])
    # per type: a rating is every type's reward; the weights are the posterior given the whole session
    np.testing.assert_array_equal(data.type_rewards, np.repeat(data.rewards[:, None], K, 1))
    np.testing.assert_allclose(data.type_weights.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(data.type_weights[0], data.type_weights[2])

    unrated = transitions(episodes(rng, 2, turns=3), user_model, cfg)
    assert unrated.type_rewards.shape == unrated.type_weights.shape == (6, K)
    assert not np.allclose(unrated.type_rewards[:, 0], unrated.type_rewards[:, 1])  # u_k(chosen) differs by type


def test_iql_learns_a_planted_action_value(user_model):
    """One-step episodes where reward = first action coordinate: Q must rank by it after training."""
    rng = np.random.default_rng(2)
    cfg = small_config(steps=600, lr=3e-3)
    cfg.qnet.myopic_residual = cfg.qnet.per_type_values = False
    n = 2000
    S = rng.normal(size=(n, state_dim(cfg.qnet))).astype(np.float32)
    A = rng.normal(size=(n, action_dim(cfg.qnet))).astype(np.float32)
    data = Transitions(S, A, A[:, 0].copy(), S, np.ones(n, np.float32))
    q, stats = train_iql(data, cfg)
    assert stats["transitions"] == n and stats["final_q_loss"] < 0.1
    probe = rng.normal(size=(50, action_dim(cfg.qnet))).astype(np.float32)
    values = q.q(S[0], probe)
    assert np.corrcoef(values, probe[:, 0])[0, 1] > 0.9


def test_per_type_iql_learns_what_each_type_values():
    """One-step sessions of two kinds of people: type 0 is rewarded by the action's first coordinate, type 1 by minus
    it, and each session's weight says whose it is. Q_0 must rank by the coordinate and Q_1 against it, and the
    posterior in the state picks between them."""
    rng = np.random.default_rng(3)
    cfg = small_config(steps=800, lr=3e-3)
    cfg.qnet.myopic_residual = False
    n = 2000
    S = rng.normal(size=(n, state_dim(cfg.qnet))).astype(np.float32)
    A = rng.normal(size=(n, action_dim(cfg.qnet))).astype(np.float32)
    kind = rng.integers(2, size=n)
    rewards = np.stack([A[:, 0], -A[:, 0]], 1)
    weights = np.eye(2, dtype=np.float32)[kind]
    data = Transitions(S, A, rewards[np.arange(n), kind], S, np.ones(n, np.float32), rewards, weights)
    q, _ = train_iql(data, cfg)
    probe = rng.normal(size=(50, action_dim(cfg.qnet))).astype(np.float32)
    values = q.q_types(S[0], probe)
    assert values.shape == (50, 2)
    assert np.corrcoef(values[:, 0], probe[:, 0])[0, 1] > 0.9 and np.corrcoef(values[:, 1], probe[:, 0])[0, 1] < -0.9
    s = S[0].copy()
    s[-K:] = (0.0, 1.0)  # a person known to be of type 1
    np.testing.assert_allclose(q.q(s, probe), q.q_types(s, probe)[:, 1], rtol=1e-5)


def test_a_q_network_saved_before_per_type_values_still_loads(tmp_path):
    import json

    torch.manual_seed(0)
    old = TwinQ(QNetConfig(embedding_dim=D, n_types=K, horizon=3, hidden=16, per_type_values=False))
    old.save(tmp_path / "q")
    # as it was written then: qnet.json + qnet.safetensors, without the per_type_values field
    meta = json.loads((tmp_path / "q" / "config.json").read_text())
    del meta["qnet"]["per_type_values"]
    (tmp_path / "q" / "qnet.json").write_text(json.dumps(meta))
    (tmp_path / "q" / "config.json").unlink()
    (tmp_path / "q" / "model.safetensors").rename(tmp_path / "q" / "qnet.safetensors")
    again = TwinQ.load(tmp_path / "q")
    assert again.config.per_type_values is False
    s, a = np.ones(state_dim(old.config), np.float32), np.ones((3, action_dim(old.config)), np.float32)
    np.testing.assert_array_equal(old.q(s, a), again.q(s, a))
    assert again.q_types(s, a).shape == (3, K)


def test_twin_q_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    q = TwinQ(QNetConfig(embedding_dim=D, n_types=K, horizon=3, hidden=16))
    q.save(tmp_path / "q", metrics={"note": "test"})
    again = TwinQ.load(tmp_path / "q")
    s, a = np.ones(state_dim(q.config), np.float32), np.ones((3, action_dim(q.config)), np.float32)
    np.testing.assert_array_equal(q.q(s, a), again.q(s, a))
    with pytest.raises(FileNotFoundError, match="pasta train q"):
        TwinQ.load(tmp_path / "missing")


def test_residual_q_starts_from_the_myopic_value():
    """With the MLP's last layer zeroed, Q is exactly posterior . u(a)."""
    c = QNetConfig(embedding_dim=D, n_types=K, horizon=3, hidden=16)
    q = TwinQ(c)
    for net in (q.q1, q.q2):
        torch.nn.init.zeros_(net.net[-1].weight)
        torch.nn.init.zeros_(net.net[-1].bias)
    rng = np.random.default_rng(3)
    posterior = np.array([0.25, 0.75], np.float32)
    s = state_features(c, unit(rng), unit(rng), np.zeros((0, D), np.float32), 0, posterior)
    u = rng.normal(size=(6, K)).astype(np.float32)
    np.testing.assert_allclose(q.q(s, action_features(unit(rng, 6), ["detail"] * 6, u)), u @ posterior, rtol=1e-5)


def test_policies_pick_one_per_category(user_model):
    rng = np.random.default_rng(4)
    cands = [Candidate(f"c{i}", CATEGORIES[i % 5]) for i in range(25)]
    E = unit(rng, 25)
    state = PolicyState.build(unit(rng), [ShownSlate.of(E[:4], None, 2)], seed=0, candidate_embeddings=E)
    q = TwinQ(QNetConfig(embedding_dim=D, n_types=K, horizon=3, hidden=16))
    for policy in (GreedyMyopicPolicy(user_model), QPolicy(q, user_model, slate="top")):
        slate, scores = policy.select(state, cands, 4)
        assert len(slate) == 4 and scores.shape == (25,)
        assert len({cands[i].category for i in slate}) == 4
        # each pick is the best of its category
        for i in slate:
            same = [j for j in range(25) if cands[j].category == cands[i].category]
            assert scores[i] == max(scores[j] for j in same)
    for policy in (GreedyMyopicPolicy(user_model, "choice-model"), QPolicy(q, user_model)):
        slate, scores = policy.select(state, cands, 4)
        assert len(slate) == 4 and scores.shape == (25,) and len({cands[i].category for i in slate}) == 4
    with pytest.raises(ValueError, match="unknown slate construction 'best'"):
        QPolicy(q, user_model, slate="best")


def brute_force_slate_value(slate, values, utilities, posterior, temperature):
    """sum_k p_k sum_j softmax_j(u_kj / T) v_jk, written out for one slate."""
    total = 0.0
    for k, p in enumerate(posterior):
        w = np.exp(utilities[slate, k] / temperature)
        total += p * float((w / w.sum()) @ values[slate, k])
    return total


def test_choice_model_slate_is_the_best_one_per_category_slate():
    """Exact against brute force over every slate of 4 of 5 categories; with one known type and a near-zero
    temperature it is top-per-category; under an uncertain posterior it covers the types that top-per-category
    leaves out."""
    import itertools

    from pasta.policy.slate import choice_model_slate, top_per_category

    rng = np.random.default_rng(5)
    cands = [Candidate(f"c{i}", CATEGORIES[i % 5]) for i in range(25)]
    for _ in range(5):
        u = rng.normal(size=(25, 3))
        v = u + rng.normal(scale=0.3, size=(25, 1))
        p = rng.dirichlet(np.ones(3))
        slate = choice_model_slate(v, u, p, 0.3, cands, 4)
        assert len({cands[i].category for i in slate}) == 4
        best = max(
            brute_force_slate_value(list(s), v, u, p, 0.3)
            for cats in itertools.combinations(range(5), 4)
            for s in itertools.product(*([j for j in range(25) if j % 5 == c] for c in cats))
        )
        assert brute_force_slate_value(slate, v, u, p, 0.3) == pytest.approx(best)

    u1 = rng.normal(size=(25, 1))
    assert sorted(choice_model_slate(u1, u1, np.ones(1), 1e-3, cands, 4)) == sorted(
        top_per_category(u1[:, 0], cands, 4)
    )

    # two equally likely types with opposite favourites (+3 for one, -3 for the other: mean 0) and mild
    # compromises (0.5 for both) in every category: top-per-category shows four compromises, the choice model
    # shows each type's favourite, which that type will pick
    u2 = np.full((25, 2), -5.0)
    u2[[2, 3, 4, 5, 6]] = 0.5
    u2[0], u2[1] = (3.0, -3.0), (-3.0, 3.0)
    p2 = np.array([0.5, 0.5])
    assert not {0, 1} & set(top_per_category(u2 @ p2, cands, 4))
    slate = choice_model_slate(u2, u2, p2, 0.3, cands, 4)
    assert {0, 1} <= set(slate)
    assert brute_force_slate_value(slate, u2, u2, p2, 0.3) > 2.5

    # `keep`: the best of the slates that hold that candidate, exact against brute force
    for keep in (0, 7, 24):
        slate = choice_model_slate(v, u, p, 0.3, cands, 4, keep=keep)
        assert keep in slate and len({cands[i].category for i in slate}) == 4
        best = max(
            brute_force_slate_value(list(s), v, u, p, 0.3)
            for cats in itertools.combinations(range(5), 4)
            for s in itertools.product(*([j for j in range(25) if j % 5 == c] for c in cats))
            if keep in s
        )
        assert brute_force_slate_value(slate, v, u, p, 0.3) == pytest.approx(best)
    assert 10 not in choice_model_slate(u2, u2, p2, 0.3, cands, 4)  # -5 for both types, and yet kept:
    assert 10 in choice_model_slate(u2, u2, p2, 0.3, cands, 4, keep=10)

    with pytest.raises(ValueError, match="disagree on the types"):
        choice_model_slate(u2, u2, np.ones(3) / 3, 0.3, cands, 4)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        choice_model_slate(u2, u2, np.array([0.5, 0.5]), 0.0, cands, 4)
