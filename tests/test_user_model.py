"""EM user-type model on planted linear types: recovery, posterior, K selection, save/load, bad data."""

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from pasta.policy.user_model import ChoiceData, UserModel, UserModelConfig, select_k


def planted(n_users=600, turns=5, k=3, d=16, columns=4, temperature=0.15, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(k, d))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    types = rng.integers(0, k, n_users)
    X = rng.normal(size=(n_users * turns, columns, d)) / np.sqrt(d) * 3
    user = np.repeat(np.arange(n_users), turns)
    u = np.einsum("tld,td->tl", X, W[types[user]]) / temperature
    p = np.exp(u - u.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    choice = np.array([rng.choice(columns, p=row) for row in p])
    return ChoiceData(X, choice, user), types


def test_em_recovers_planted_types_and_predicts_choices():
    data, types = planted()
    train, test = data.subset_users(np.arange(450)), data.subset_users(np.arange(450, 600))
    model = UserModel(16, UserModelConfig(n_types=3, hidden=16))
    trace = model.fit(train)["log_likelihood_per_turn"]
    assert trace[-1] > trace[0] - 1e-6  # EM does not go backwards overall
    posterior = model.posterior(test)
    assert posterior.shape == (150, 3) and np.allclose(posterior.sum(1), 1, atol=1e-5)
    assert adjusted_rand_score(types[450:], posterior.argmax(1)) > 0.8
    probs = model.predict_choice(test.X, posterior[test.user])
    assert probs.shape == (len(test.X), 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == test.choice).mean() > 0.6


def test_fit_with_known_types_predicts_each_types_choices():
    data, types = planted(seed=2)
    train, test = data.subset_users(np.arange(450)), data.subset_users(np.arange(450, 600))
    model = UserModel(16, UserModelConfig(n_types=3, hidden=16))
    model.fit_known_types(train, types[:450])
    # given the planted type, the fitted head of that type predicts the held-out users' choices
    log_probs = model.choice_log_probs(torch.as_tensor(test.X)).detach().numpy()  # [turns, L, K]
    own = log_probs[np.arange(len(test.X)), :, types[450:][test.user]]
    assert (own.argmax(1) == test.choice).mean() > 0.6
    assert np.allclose(np.exp(model.log_prior.numpy()), np.bincount(types[:450], minlength=3) / 450, atol=1e-6)
    with pytest.raises(ValueError, match="one type in 0..2 per user"):
        model.fit_known_types(train, types[:10])
    with pytest.raises(ValueError, match="one type in 0..2 per user"):
        model.fit_known_types(train, np.full(450, 3))


def test_live_posterior_sharpens_with_each_choice():
    data, types = planted(seed=1)
    model = UserModel(16, UserModelConfig(n_types=3, hidden=16))
    model.fit(data)
    rows = np.where(data.user == 0)[0]
    entropies = []
    for t in range(len(rows) + 1):
        post = model.live_posterior([(data.X[r], data.choice[r]) for r in rows[:t]])
        entropies.append(-(post * np.log(post + 1e-12)).sum())
    assert entropies[-1] < entropies[0]
    turns = [(data.X[r], data.choice[r]) for r in rows]
    every = model.live_posteriors(turns)  # all prefixes at once, as training reads them
    assert every.shape == (len(rows) + 1, 3)
    for t in range(len(rows) + 1):
        np.testing.assert_allclose(every[t], model.live_posterior(turns[:t]), rtol=1e-6, atol=1e-7)
    ragged = [(data.X[rows[0]][:2], 1), (data.X[rows[1]], int(data.choice[rows[1]]))]  # slates of two sizes
    np.testing.assert_allclose(model.live_posteriors(ragged)[-1], model.live_posterior(ragged), rtol=1e-6)


def test_select_k_prefers_the_planted_number_over_one():
    data, _ = planted(n_users=500, seed=2)
    best, table, _ = select_k(
        data.subset_users(np.arange(400)), data.subset_users(np.arange(400, 500)), [1, 3], UserModelConfig(hidden=16)
    )
    assert best == 3 and [row["k"] for row in table] == [1, 3]


def test_select_k_on_worker_processes_matches_one_process():
    """The Ks are independent fits: side by side on two processes they score as one after the other does (up to
    float summation order, since the workers run torch on one thread), in the order the Ks were given."""
    from pasta.executors import ExecutorConfig

    data, _ = planted(n_users=300, seed=4)
    train, held_out = data.subset_users(np.arange(240)), data.subset_users(np.arange(240, 300))
    config = UserModelConfig(hidden=16, em_iters=5)
    here = select_k(train, held_out, [3, 1, 2], config)
    apart = select_k(train, held_out, [3, 1, 2], config, ExecutorConfig("processes", workers=2))
    assert apart[0] == here[0] == 3
    assert [row["k"] for row in apart[1]] == [3, 1, 2] and sorted(apart[2]) == [1, 2, 3]
    for a, b in zip(apart[1], here[1], strict=True):
        assert a["held_out_log_likelihood_per_turn"] == pytest.approx(b["held_out_log_likelihood_per_turn"], abs=2e-3)
    assert apart[2][3].posterior(held_out).shape == (60, 3)


def test_save_load_round_trip(tmp_path):
    data, _ = planted(n_users=100, seed=3)
    model = UserModel(16, UserModelConfig(n_types=2, hidden=8, em_iters=2))
    model.fit(data)
    model.save(tmp_path / "um", metrics={"note": "test"})
    loaded = UserModel.load(tmp_path / "um")
    assert np.allclose(loaded.posterior(data), model.posterior(data))
    with pytest.raises(FileNotFoundError, match="pasta train user-model"):
        UserModel.load(tmp_path / "missing")


def test_bad_choice_data_is_rejected_clearly():
    X = np.zeros((2, 4, 3))
    with pytest.raises(ValueError, match="outside its slate"):
        ChoiceData(X, np.array([0, 4]), np.array([0, 0]))
    with pytest.raises(ValueError, match=r"\[turns, columns, features\]"):
        ChoiceData(np.zeros((2, 3)), np.array([0, 0]), np.array([0, 0]))
    mask = np.ones((2, 4), bool)
    mask[1, 3] = False
    with pytest.raises(ValueError, match="padded"):
        ChoiceData(X, np.array([0, 3]), np.array([0, 0]), mask)


def test_a_user_model_saved_in_the_older_layout_still_loads(tmp_path):
    import json

    from pasta.policy.user_model import UserModel, UserModelConfig

    model = UserModel(8, UserModelConfig(n_types=2, hidden=4))
    model.save(tmp_path / "um", {"k": 2})
    assert sorted(p.name for p in (tmp_path / "um").iterdir()) == ["config.json", "model.safetensors"]
    (tmp_path / "um" / "config.json").rename(tmp_path / "um" / "user_model.json")  # how it was saved before
    (tmp_path / "um" / "model.safetensors").rename(tmp_path / "um" / "user_model.safetensors")
    again = UserModel.load(tmp_path / "um")
    assert again.n_features == 8 and again.config.n_types == 2
    assert json.loads((tmp_path / "um" / "user_model.json").read_text())["metrics"] == {"k": 2}
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert a.equal(b)
    import pytest

    with pytest.raises(FileNotFoundError, match="pasta train user-model"):
        UserModel.load(tmp_path / "nothing")
