"""Simulated sessions through the real log store, then `pasta train user-model` and `pasta simulate`."""

from pathlib import Path

import numpy as np
import pytest

from pasta.cli import main as pasta
from pasta.logbook import LogStore
from pasta.policy.choice_data import choice_data_from_episodes
from pasta.policy.episodes import TextEmbeddingCache, read_episodes
from pasta.policy.train_user_model import TrainUserModelConfig, train_user_model
from pasta.policy.user_model import UserModel, UserModelConfig
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
    cache = TextEmbeddingCache(None, known=world.known_text_embeddings())
    data, user_ids = choice_data_from_episodes(read_episodes(logged, cache))
    assert user_ids == [e.user_id for e in episodes]
    assert data.X.shape == (25, 4, 768)
    assert data.choice.tolist() == [s.choice for e in episodes for s in e.turns]
    first = episodes[0].turns[0]
    column = first.chosen_index
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
    assert metrics["k_selection_users"] == 120  # fewer users than the subsample: K is chosen on all of them

    sub = TrainUserModelConfig(**{**cfg.__dict__, "out": tmp_path / "sub", "k_selection_users": 40})
    metrics = train_user_model(sub, known_texts=world.known_text_embeddings())
    assert metrics["k_selection_users"] == 40 and metrics["users"] == 120 and metrics["turns"] == 600
    with pytest.raises(ValueError, match="k_selection_users must be 0 .all users. or at least 4"):
        train_user_model(TrainUserModelConfig(**{**cfg.__dict__, "k_selection_users": 3}))


def test_pairwise_preferences_join_the_em_likelihood_as_two_column_choices(world, tmp_path):
    """Pick-a-Pic-style rows (a prompt, two images with embeddings, a label) imported from Parquet become
    two-column choices; ties and rows without embeddings are skipped and counted; a wrong embedding size fails
    clearly and trains nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pasta.policy.choice_data import choice_data_from_pairwise
    from pasta.policy.user_model import ChoiceData

    db = tmp_path / "sim.sqlite"
    assert pasta(["simulate", "--db", str(db), "--users", "60", "--types", "2", "--policy", "random"]) == 0
    E, texts = world.embeddings, list(world.known_text_embeddings())
    rng = np.random.default_rng(0)
    a, b = rng.integers(len(E), size=(2, 40))
    labels = [1.0, 0.0, 0.5, 1.0] * 10
    table = {
        "caption": texts[:40],
        "image_0_uid": [f"a{i}" for i in range(40)],
        "image_1_uid": [f"b{i}" for i in range(40)],
        "label": labels,
        "user_id": [i % 8 for i in range(40)],
        "embedding_0": [E[i].tolist() if n != 5 else None for n, i in enumerate(a)],
        "embedding_1": [E[i].tolist() for i in b],
    }
    pq.write_table(pa.table(table), tmp_path / "pairs.parquet")
    with LogStore(db) as store:
        assert store.import_pairwise_parquet(tmp_path / "pairs.parquet") == 40
        pairs, users, counts = choice_data_from_pairwise(
            store.pairwise_rows(), TextEmbeddingCache(None, known=world.known_text_embeddings())
        )
    assert counts == {"used": 29, "ties": 10, "no_embeddings": 1} and len(users) == 6  # users 2, 6: only ties
    assert pairs.X.shape == (29, 2, 768) and pairs.mask.all()
    first = [n for n in range(40) if labels[n] != 0.5 and n != 5][0]
    assert np.allclose(pairs.X[0, 0, 384:], E[a[first]]) and pairs.choice[0] == (0 if labels[first] == 1 else 1)
    both = ChoiceData.concat([ChoiceData(np.zeros((3, 4, 768)), [0, 1, 2], [0, 0, 1]), pairs])
    assert both.X.shape == (32, 4, 768) and both.n_users == 2 + 6 and not both.mask[3:, 2:].any()

    cfg = TrainUserModelConfig(
        db=db, out=tmp_path / "um", ks=(1, 2), pairwise=True, model=UserModelConfig(hidden=16, em_iters=3)
    )
    metrics = train_user_model(cfg, known_texts=world.known_text_embeddings())
    assert metrics["pairwise"] == counts and metrics["turns"] == 300
    with LogStore(db, create=False) as store:
        assert store.latest_model_version("user_model")["trained_on"]["pairwise_choices"] == 29

    table["embedding_1"] = [E[i][:100].tolist() for i in b]
    pq.write_table(pa.table(table), tmp_path / "short.parquet")
    with LogStore(tmp_path / "short.sqlite") as store:
        store.import_pairwise_parquet(tmp_path / "short.parquet")
        with pytest.raises(ValueError, match=r"\[100, 384\] dimensions but prompt embeddings have 384"):
            choice_data_from_pairwise(
                store.pairwise_rows(), TextEmbeddingCache(None, known=world.known_text_embeddings())
            )


def test_training_on_a_missing_or_tiny_store_fails_clearly(tmp_path):
    with pytest.raises(Exception, match="missing|does not exist|no such|not found"):
        train_user_model(TrainUserModelConfig(db=tmp_path / "none.sqlite"))
    LogStore(tmp_path / "empty.sqlite").close()
    with pytest.raises(ValueError, match="too few"):
        train_user_model(TrainUserModelConfig(db=tmp_path / "empty.sqlite"))


def test_train_q_and_retrain_from_a_log_store(world, tmp_path):
    """The closed loop: logs -> user model -> Q-network, versions recorded, real/simulated mixture honoured."""
    from pasta.policy.iql import IQLConfig, TwinQ
    from pasta.policy.qnet import QNetConfig
    from pasta.policy.train_q import TrainQConfig, mixture, train_q

    db = tmp_path / "sim.sqlite"
    assert pasta(["simulate", "--db", str(db), "--users", "60", "--types", "2", "--policy", "random"]) == 0
    embed = TextEmbeddingCache(None, known=world.known_text_embeddings())
    train_user_model(
        TrainUserModelConfig(db=db, out=tmp_path / "agent" / "user_model", ks=(2,), model=UserModelConfig(em_iters=3)),
        known_texts=world.known_text_embeddings(),
    )
    small = IQLConfig(steps=30, batch_size=32, qnet=QNetConfig(hidden=16))
    metrics = train_q(
        TrainQConfig(db=db, user_model=tmp_path / "agent" / "user_model", out=tmp_path / "agent" / "qnet", iql=small),
        embed_text=embed,
    )
    assert metrics["transitions"] == 300 and metrics["simulated_sessions"] == 60 and metrics["real_sessions"] == 0
    q = TwinQ.load(tmp_path / "agent" / "qnet")
    assert q.config.n_types == 2
    with LogStore(db, create=False) as store:
        assert store.latest_model_version("qnet")["path"] == str(tmp_path / "agent" / "qnet")
        episodes = read_episodes(store.episodes(), embed)
    assert len(episodes) == 60 and episodes[0].turns[0].text_embeddings.shape == (4, 384)
    rng = np.random.default_rng(0)
    assert len(mixture(episodes[:10], episodes[10:], 0.5, rng)) == 20  # 10 real + 10 simulated
    with pytest.raises(ValueError, match="real_fraction"):
        mixture(episodes[:10], episodes[10:], 1.5, rng)
    with pytest.raises(ValueError, match="nothing to learn"):
        LogStore(tmp_path / "empty.sqlite").close()
        train_q(
            TrainQConfig(db=tmp_path / "empty.sqlite", user_model=tmp_path / "agent" / "user_model", iql=small),
            embed_text=embed,
        )


def test_training_commands_chain_through_a_run_folder_and_leave_the_shipped_agent_alone():
    from pasta.policy.train_q import AGENT_DIR, RetrainConfig, TrainQConfig

    user_model_out = TrainUserModelConfig(db=Path("x")).out
    q = TrainQConfig(db=Path("x"))
    assert q.user_model == user_model_out  # train q reads what train user-model wrote
    assert q.out.parent == user_model_out.parent == RetrainConfig(db=Path("x")).out
    for path in (user_model_out, q.out, RetrainConfig(db=Path("x")).out):
        assert not path.resolve().is_relative_to(AGENT_DIR.resolve())


def test_the_one_reader_embeds_every_distinct_text_once_for_both_learners(tmp_path):
    from pasta.policy.choice_data import choice_data_from_episodes
    from pasta.policy.episodes import TextEmbeddingCache, read_episodes

    db = tmp_path / "sim.sqlite"
    assert pasta(["simulate", "--db", str(db), "--users", "12", "--types", "2", "--policy", "random"]) == 0
    calls: list[list[str]] = []

    def embed(texts):
        calls.append(list(texts))
        rng = np.random.default_rng([len(t) for t in texts])
        return rng.normal(size=(len(texts), 384)).astype(np.float32)

    cache = TextEmbeddingCache(embed)
    with LogStore(db, create=False) as store:
        logged = read_episodes(store.episodes(), cache)
        again = read_episodes(store.episodes(), cache)  # e.g. the Q-network after the user model, in pasta retrain
    seen = [t for call in calls for t in call]
    assert len(seen) == len(set(seen)) and len(calls) == 1  # one batched call, each text once, none the second time
    data, users = choice_data_from_episodes(logged)
    assert len(logged) == len(again) == 12 and data.X.shape[0] == 60 and len(users) == 12
    np.testing.assert_array_equal(logged[0].turns[0].text_embeddings, again[0].turns[0].text_embeddings)
