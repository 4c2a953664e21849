"""Simulated sessions through the real log store, then `pasta train user-model` and `pasta simulate`."""

import numpy as np
import pytest

from pasta.cli import main as pasta
from pasta.embeddings import TextEmbeddingCache, choice_data_from_episodes
from pasta.logbook import LogStore
from pasta.train_user_model import TrainUserModelConfig, train_user_model
from pasta.user_model import UserModel, UserModelConfig
from user_sim.policies import make_policy
from user_sim.rollout import run_episode
from user_sim.store import write_episodes
from user_sim.users import make_users, planted_population
from user_sim.world import EmbeddingWorld


@pytest.fixture(scope="module")
def world():
    return EmbeddingWorld()


def test_store_round_trip_gives_the_choices_that_were_made(world, tmp_path):
    users = make_users(world, planted_population(2, seed=0), 5, seed=0)
    episodes = [run_episode(make_policy("random"), u, world, seed=i) for i, u in enumerate(users)]
    with LogStore(tmp_path / "s.sqlite") as store:
        write_episodes(store, episodes, world)
        logged = list(store.episodes(source="simulator"))
    data, user_ids = choice_data_from_episodes(logged, TextEmbeddingCache(None, known=world.known_text_embeddings()))
    assert user_ids == [e.user_id for e in episodes]
    assert data.X.shape == (25, 4, 768)
    assert data.choice.tolist() == [s.choice for e in episodes for s in e.steps]
    first = episodes[0].steps[0]
    column = first.candidates[first.slate[first.choice]].index
    assert np.allclose(data.X[0, first.choice, 384:], world.embeddings[column])  # stored image-embedding proxy


def test_train_user_model_saves_and_records_a_version(world, tmp_path):
    db = tmp_path / "sim.sqlite"
    assert pasta(["simulate", "--db", str(db), "--users", "120", "--types", "2", "--policy", "random"]) == 0
    cfg = TrainUserModelConfig(db=db, out=tmp_path / "um", ks=(1, 2), model=UserModelConfig(hidden=16, em_iters=5))
    metrics = train_user_model(cfg, known_texts=world.known_text_embeddings())
    assert metrics["k"] in (1, 2) and metrics["turns"] == 600
    model = UserModel.load(tmp_path / "um")
    assert model.config.n_types == metrics["k"]
    with LogStore(db, create=False) as store:
        version = store.latest_model_version("user_model")
    assert version["path"] == str(tmp_path / "um") and version["metrics"]["k"] == metrics["k"]


def test_training_on_a_missing_or_tiny_store_fails_clearly(tmp_path):
    with pytest.raises(Exception, match="missing|does not exist|no such|not found"):
        train_user_model(TrainUserModelConfig(db=tmp_path / "none.sqlite"))
    LogStore(tmp_path / "empty.sqlite").close()
    with pytest.raises(ValueError, match="too few"):
        train_user_model(TrainUserModelConfig(db=tmp_path / "empty.sqlite"))


def test_train_q_and_retrain_from_a_log_store(world, tmp_path):
    """The closed loop: logs -> user model -> Q-network, versions recorded, real/simulated mixture honoured."""
    from pasta.iql import IQLConfig, TwinQ
    from pasta.qnet import QNetConfig
    from pasta.train_q import TrainQConfig, logged_episodes, mixture, train_q

    db = tmp_path / "sim.sqlite"
    assert pasta(["simulate", "--db", str(db), "--users", "60", "--types", "2", "--policy", "random"]) == 0
    embed = TextEmbeddingCache(None, known=world.known_text_embeddings())
    train_user_model(TrainUserModelConfig(db=db, out=tmp_path / "agent" / "user_model", ks=(2,),
                                          model=UserModelConfig(em_iters=3)), known_texts=world.known_text_embeddings())
    small = IQLConfig(steps=30, batch_size=32, qnet=QNetConfig(hidden=16))
    metrics = train_q(TrainQConfig(db=db, user_model=tmp_path / "agent" / "user_model", out=tmp_path / "agent" / "qnet",
                                   iql=small), embed_text=embed)
    assert metrics["transitions"] == 300 and metrics["simulated_sessions"] == 60 and metrics["real_sessions"] == 0
    q = TwinQ.load(tmp_path / "agent" / "qnet")
    assert q.config.n_types == 2
    with LogStore(db, create=False) as store:
        assert store.latest_model_version("qnet")["path"] == str(tmp_path / "agent" / "qnet")
        episodes = logged_episodes(store.episodes(), embed)
    assert len(episodes) == 60 and episodes[0].turns[0].text_embeddings.shape == (4, 384)
    rng = np.random.default_rng(0)
    assert len(mixture(episodes[:10], episodes[10:], 0.5, rng)) == 20  # 10 real + 10 simulated
    with pytest.raises(ValueError, match="real_fraction"):
        mixture(episodes[:10], episodes[10:], 1.5, rng)
    with pytest.raises(ValueError, match="nothing to learn"):
        LogStore(tmp_path / "empty.sqlite").close()
        train_q(TrainQConfig(db=tmp_path / "empty.sqlite", user_model=tmp_path / "agent" / "user_model",
                             iql=small), embed_text=embed)
