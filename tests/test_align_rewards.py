"""Rewards for alignment: the learned alignment reward (a real small training run on composed Fashion-MNIST images
with perturbed captions), the personalized user-type reward (a real EM fit), the programmatic redness reward, the
`--reward` and `--prompts` specs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pasta.align.prompts import load_prompts
from pasta.align.rewards import AlignmentReward, RednessReward, Reward, UserTypeReward, make_reward
from pasta.backends.image_encoder import ImageEncoder, ImageEncoderConfig
from pasta.worlds import fashion
from pasta.worlds.fashion_task import REQUESTED, training_prompts


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("encoder")
    ImageEncoder(ImageEncoderConfig(channels=(8, 16), blocks=(1, 1), groups=4)).save(folder)
    return folder


@pytest.mark.fashion_mnist
def test_alignment_reward_trains_reports_held_out_accuracy_and_reloads(encoder_dir, tmp_path, minilm):
    from pasta.align.train_reward import TrainRewardConfig, train_reward
    from pasta.worlds.fashion_task import preference_data

    data = preference_data(6, "test", negatives=4, seed=0, held_out_share=1.0)
    assert data["images"].shape == (6, 32, 32, 3) and all(len(row) == 5 for row in data["captions"])
    assert data["held_out_triple"].all()  # eval-like images with held-out triples show their visible pattern
    for row, swapped in zip(data["captions"], data["swapped"]):
        assert len(set(swapped)) == 4 and set(swapped) <= set(REQUESTED)
        assert row[0] not in row[1:]  # every perturbed caption differs from the true one

    cfg = TrainRewardConfig(out=tmp_path / "reward", images=96, held_out_images=32, epochs=3, encoder_dir=encoder_dir)
    metrics = train_reward(cfg, progress=False)
    held = metrics["held_out"]
    for key in ("pairwise_accuracy", "prompt_classification_accuracy", "label_accuracy"):
        assert 0.0 <= held[key] <= 1.0
    assert set(held["pairwise_accuracy_by_swapped_attribute"]) <= set(REQUESTED)
    reward = AlignmentReward.load(tmp_path / "reward", text=minilm)
    assert isinstance(reward, Reward) and reward.held_out_accuracy() == held["pairwise_accuracy"]
    assert reward.spec == f"alignment={tmp_path / 'reward'}"

    pixels = (torch.rand(3, 3, 32, 32) * 2 - 1).requires_grad_(True)
    prompts = ["a red dress", "a blue coat", "a green bag"]
    r = reward(pixels, prompts)
    assert r.shape == (3,) and torch.isfinite(r).all()
    r.sum().backward()
    assert pixels.grad.abs().sum() > 0  # differentiable with respect to the pixels
    again = make_reward(f"alignment={tmp_path / 'reward'}", text=minilm)
    torch.testing.assert_close(again(pixels.detach(), prompts), r.detach())
    with pytest.raises(ValueError, match="one prompt per image"):
        reward(pixels.detach(), prompts[:2])
    with pytest.raises(FileNotFoundError, match="pasta align reward"):
        AlignmentReward.load(tmp_path / "missing")


@pytest.mark.fashion_mnist
def test_redness_reward_prefers_red_and_reports_held_out_accuracy():
    reward = RednessReward()
    red = torch.tensor([1.0, -1.0, -1.0])[None, :, None, None].expand(1, 3, 8, 8)
    green = torch.tensor([-1.0, 1.0, -1.0])[None, :, None, None].expand(1, 3, 8, 8)
    values = reward(torch.cat([red, green]), ["", ""])
    assert values[0] == pytest.approx(1.0) and values[1] == pytest.approx(-0.5)
    assert reward.held_out_accuracy(n_pairs=40) > 0.9
    assert reward.metrics()["held_out"]["pairwise_accuracy"] == reward.held_out_accuracy()


def test_user_type_reward_is_a_types_utility_with_held_out_choice_accuracy(encoder_dir, tmp_path, minilm):
    from pasta.policy.user_model import ChoiceData, UserModel, UserModelConfig

    rng = np.random.default_rng(0)
    n_users, turns, slate, dim = 60, 4, 4, 768
    directions = rng.normal(size=(2, dim))
    types = rng.integers(0, 2, n_users)
    X = rng.normal(size=(n_users * turns, slate, dim)).astype(np.float32)
    user = np.repeat(np.arange(n_users), turns)
    choice = np.argmax(X @ directions[types[user]][:, :, None], axis=1)[:, 0]
    data = ChoiceData(X, choice, user)
    model = UserModel(dim, UserModelConfig(n_types=2, em_iters=8, hidden=16))
    model.fit(data)
    model.save(tmp_path / "um")
    held = ChoiceData(X[: 20 * turns], choice[: 20 * turns], user[: 20 * turns])
    rewards = [
        UserTypeReward.load(tmp_path / "um", k, encoder_dir=encoder_dir, text=minilm, held_out=held) for k in range(2)
    ]
    assert max(r.held_out_accuracy() or 0 for r in rewards) > 0.5  # chance is 0.25
    pixels = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    r = rewards[0](pixels, ["a red dress", "a blue coat"])
    assert r.shape == (2,)
    r.sum().backward()
    assert pixels.grad.abs().sum() > 0
    assert rewards[1].spec == f"user-type={tmp_path / 'um'}#1"
    with pytest.raises(ValueError, match="user type 5 does not exist"):
        UserTypeReward.load(tmp_path / "um", 5, encoder_dir=encoder_dir, text=minilm)


def test_reward_and_prompt_specs_fail_clearly(tmp_path):
    assert isinstance(make_reward("redness"), RednessReward)
    with pytest.raises(ValueError, match="unknown reward 'clip'"):
        make_reward("clip")
    with pytest.raises(ValueError, match="needs a user model folder"):
        make_reward("user-type=")
    with pytest.raises(ValueError, match="must be an integer"):
        make_reward(f"user-type={tmp_path}#first")
    with pytest.raises(FileNotFoundError, match="neither train:N"):
        load_prompts(tmp_path / "nothing.txt")
    with pytest.raises(ValueError, match="N must be between"):
        load_prompts("train:0")
    (tmp_path / "p.txt").write_text("# prompts\na red dress\n\nblue coat\n")
    assert load_prompts(tmp_path / "p.txt") == ["a red dress", "blue coat"]


def test_training_prompts_never_use_held_out_triples():
    held = {(a.garment, a.colour, a.pattern) for _, a in fashion.evaluation_prompts(200)}
    train = training_prompts(300, seed=1)
    assert {(a.garment, a.colour, a.pattern) for _, a in train}.isdisjoint(held)
    assert len({t for t, _ in train}) > 250
    assert load_prompts("train:5") == [t for t, _ in training_prompts(5)]
    assert load_prompts("eval:3") == [t for t, _ in fashion.evaluation_prompts(3)]


def test_prompt_sets_restricted_to_garments():
    hard = ("coat", "shirt", "pullover")
    train = training_prompts(60, seed=2, garments=hard)
    assert {a.garment for _, a in train} == set(hard)
    held = fashion.evaluation_prompts(30, garments=hard)
    assert {a.garment for _, a in held} == set(hard)
    assert {(a.garment, a.colour, a.pattern) for _, a in train}.isdisjoint(
        {(a.garment, a.colour, a.pattern) for _, a in held}
    )
    assert load_prompts("train:60:2@coat, shirt,pullover") == [t for t, _ in train]
    assert load_prompts("eval:30@coat,shirt,pullover") == [t for t, _ in held]
    with pytest.raises(ValueError, match=r"unknown garment\(s\) \['hat'\]"):
        load_prompts("train:8@coat,hat")
    with pytest.raises(ValueError, match="empty"):
        load_prompts("train:8@,")
    with pytest.raises(ValueError, match="unknown garment"):
        fashion.evaluation_prompts(4, garments=("cape",))


def test_prompt_sets_come_from_the_worlds_prompt_task():
    from pasta.worlds import load_prompt_task

    task = load_prompt_task("fashion")
    assert task.world == "fashion" and task.requested == REQUESTED and task.subject_axis in task.requested
    assert load_prompts("train:4:3", world="fashion") == [t for t, _ in task.training_prompts(4, 3)]
    assert load_prompts("eval:3@coat") == [t for t, _ in task.evaluation_prompts(3, subjects=("coat",))]
    labels = task.requested_indices(task.evaluation_prompts(1)[0][1])
    assert set(labels) == set(task.requested)
    assert all(0 <= labels[a] < len(task.attribute_values[a]) for a in task.requested)
    with pytest.raises(ValueError, match="emoji world has no prompt-following task"):
        load_prompts("train:4", world="emoji")
    with pytest.raises(ValueError, match="unknown world 'moon'"):
        load_prompts("eval:4", world="moon")
