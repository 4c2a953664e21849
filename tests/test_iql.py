"""The Q-network, IQL and the slate policies on real (small) simulated data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pasta.contracts import CATEGORIES, Candidate
from pasta.iql import IQLConfig, LoggedEpisode, LoggedTurn, Transitions, TwinQ, expectile_loss, train_iql, transitions
from pasta.qnet import QNetConfig, action_dim, action_features, state_dim, state_features
from pasta.slate import GreedyMyopicPolicy, QPolicy
from pasta.user_model import UserModel, UserModelConfig

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
            ts.append(LoggedTurn(E, E, list(CATEGORIES[:4]), int(rng.integers(4)),
                                 int(rng.integers(1, 6)) if rated else None))
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


def test_iql_learns_a_planted_action_value(user_model):
    """One-step episodes where reward = first action coordinate: Q must rank by it after training."""
    rng = np.random.default_rng(2)
    cfg = small_config(steps=600, lr=3e-3)
    cfg.qnet.myopic_residual = False
    n = 2000
    S = rng.normal(size=(n, state_dim(cfg.qnet))).astype(np.float32)
    A = rng.normal(size=(n, action_dim(cfg.qnet))).astype(np.float32)
    data = Transitions(S, A, A[:, 0].copy(), S, np.ones(n, np.float32))
    q, stats = train_iql(data, cfg)
    assert stats["transitions"] == n and stats["final_q_loss"] < 0.1
    probe = rng.normal(size=(50, action_dim(cfg.qnet))).astype(np.float32)
    values = q.q(S[0], probe)
    assert np.corrcoef(values, probe[:, 0])[0, 1] > 0.9


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
    state = {"turn": 1, "seed": 0, "initial_embedding": unit(rng), "current_embedding": unit(rng),
             "chosen_image_embeddings": unit(rng, 1), "history_slates": [(np.concatenate([E[:4], E[:4]], 1), 2)],
             "candidate_embeddings": E}
    q = TwinQ(QNetConfig(embedding_dim=D, n_types=K, horizon=3, hidden=16))
    for policy in (GreedyMyopicPolicy(user_model), QPolicy(q, user_model)):
        slate, scores = policy.select(state, cands, 4)
        assert len(slate) == 4 and scores.shape == (25,)
        assert len({cands[i].category for i in slate}) == 4
        # each pick is the best of its category
        for i in slate:
            same = [j for j in range(25) if cands[j].category == cands[i].category]
            assert scores[i] == max(scores[j] for j in same)
