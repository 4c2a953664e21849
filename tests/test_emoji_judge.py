"""The emoji world's judge and `pasta eval t2i --world emoji`, on real composed scenes, a judge trained for a few
steps and a randomly initialised 64 px diffusion model in the shipped layout."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from model_scripts import load_script

from pasta.worlds.emoji_scenes import SceneSpec

pytestmark = pytest.mark.emoji_data


@pytest.fixture(scope="module")
def world():
    from pasta.worlds.emoji_world import EmojiWorld

    return EmojiWorld()


def test_targets_split_a_pair_and_leave_out_what_does_not_apply():
    from pasta.worlds.emoji_judge import targets

    names = ["cat", "dog", "castle"]
    t = targets(
        [SceneSpec(("cat",), "grass", "flat", "small", "left"), SceneSpec(("dog", "castle"), "sky", "neon")], names
    )
    assert t["subject"].tolist() == [[1, 0, 0], [0, 0.5, 0.5]]
    assert t["left"].tolist() == [-100, 1] and t["position"].tolist() == [1, -100] and t["size"].tolist() == [1, -100]
    assert t["count"].tolist() == [0, 1] and t["scene"].tolist() == [4, 1] and t["style"].tolist() == [1, 3]


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory, world):
    train = load_script("train_emoji_judge")
    folder = tmp_path_factory.mktemp("judge")
    cfg = train.TrainEmojiJudgeConfig(
        out=folder / "model",
        checkpoint=folder / "ck.pt",
        steps=3,
        batch_size=8,
        eval_images=16,
        save_every=2,
        channels=(8, 8, 8, 8),
    )
    metrics = train.main(cfg)
    assert metrics["steps"] == 3 and set(metrics["held_out_real_scenes"]) >= {"subject_top1", "scene", "style"}
    resumed = train.main(train.TrainEmojiJudgeConfig(**{**cfg.__dict__, "steps": 4}))
    assert resumed["steps"] == 4  # resumed from the checkpoint, not started over
    return folder / "model"


def test_the_judge_reads_scenes_and_loads_from_the_shared_layout(judge_dir, world):
    from pasta.worlds.emoji_judge import EmojiJudge, read_scenes

    judge = EmojiJudge.load(judge_dir)
    assert judge.config.subjects == list(world.concepts) and judge.config.channels == (8, 8, 8, 8)
    images, specs = world.scenes(np.random.default_rng(0), 6, "eval")
    read = read_scenes(judge, images, specs)
    assert all(len(v) == 6 for v in read.values())
    assert (read["subject_top1"] <= read["subject_topk"]).all()  # top-1 right implies top-5 right
    with pytest.raises(FileNotFoundError, match="train_emoji_judge.py"):
        EmojiJudge.load(judge_dir.parent / "nothing")


@pytest.fixture(scope="module")
def emoji_t2i_dir(tmp_path_factory) -> Path:
    from pasta.backends.embedded_t2i import EmbeddedT2IConfig, build_train_scheduler, build_unet

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("t2i_emoji")
    config = EmbeddedT2IConfig(
        image_size=64, patch_size=4, block_out_channels=(32, 32, 32), num_inference_steps=2, world="emoji"
    )
    build_unet(config).to(torch.float16).save_pretrained(folder / "unet")
    build_train_scheduler().save_pretrained(folder / "scheduler")
    config.save(folder)
    return folder


def test_eval_t2i_on_the_emoji_world_writes_metrics_and_a_contact_sheet(
    emoji_t2i_dir, judge_dir, tmp_path, minilm, capsys
):
    from pasta.tools.eval_t2i import main

    out = tmp_path / "eval"
    assert (
        main(
            [
                "--world",
                "emoji",
                "--model-dir",
                str(emoji_t2i_dir),
                "--judge-dir",
                str(judge_dir),
                "--n-prompts",
                "4",
                "--images-per-prompt",
                "1",
                "--repeats",
                "1",
                "--threads",
                "1",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_prompts"] == 4 and metrics["concepts"] == 1191 and len(metrics["prompts"]) == 4
    for key in ("subject_top1", "scene", "style"):
        for part in (metrics["generated"], metrics["judge_on_real_scenes_of_these_prompts"]):
            assert part[key] is None or 0 <= part[key] <= 1
    assert set(metrics["targets"]) == {
        "subject_top1",
        "subject_top5",
        "scene",
        "style",
        "pairs_both_present",
        "turn_seconds",
    }
    assert (out / "contact_sheet.png").stat().st_size > 0
    assert "subject_top1" in capsys.readouterr().out


def test_eval_t2i_refuses_a_model_of_another_world(tmp_path, judge_dir, capsys):
    from pasta.backends.embedded_t2i import DEFAULT_MODEL_DIR
    from pasta.tools.eval_t2i import main

    assert (
        main(
            [
                "--world",
                "emoji",
                "--model-dir",
                str(DEFAULT_MODEL_DIR),
                "--judge-dir",
                str(judge_dir),
                "--out-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "not one of the emoji world" in capsys.readouterr().err
