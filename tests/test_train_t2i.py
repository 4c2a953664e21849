"""models/train_t2i.py end to end on a few steps: export in the app's layout, resume, switch of prediction type,
both worlds, and shipped weights left alone unless named."""

import json

import pytest
import torch
from model_scripts import load_script


@pytest.fixture(scope="module")
def train_t2i():
    return load_script("train_t2i")


def run(train_t2i, tmp_path, capsys, **overrides) -> str:
    overrides = {
        "out": tmp_path / "t2i",
        "checkpoint": tmp_path / "ckpt" / "last.pt",
        "init_from": tmp_path / "no-warm-start",
        **overrides,
    }
    cfg = train_t2i.TrainT2IConfig(batch_size=2, save_every=1, threads=1, device="cpu", warmup_steps=1, **overrides)
    train_t2i.main(cfg)
    return capsys.readouterr().out


@pytest.mark.fashion_mnist
def test_train_export_resume_and_switch_prediction_type(train_t2i, tmp_path, capsys, minilm):
    from pasta.backends.embedded_t2i import EmbeddedTextToImage

    out = run(train_t2i, tmp_path, capsys, steps=2, prediction_type="epsilon")
    assert "stopped at step 2" in out
    state = json.loads((tmp_path / "t2i" / "train_state.json").read_text())
    assert state["step"] == 2 and state["prediction_type"] == "epsilon" and state["train_seconds"]["cpu"] > 0
    assert not (tmp_path / "t2i.tmp").exists()  # the export is atomic: no half-written folder is left

    out = run(train_t2i, tmp_path, capsys, steps=3, prediction_type="epsilon")
    assert "resumed from" in out and "at step 2" in out and "stopped at step 3" in out

    out = run(train_t2i, tmp_path, capsys, steps=4)  # v-prediction, the default: warm start from the eps weights
    assert "warm start of a v_prediction model from the epsilon checkpoint" in out
    state = json.loads((tmp_path / "t2i" / "train_state.json").read_text())
    assert state["step"] == 4 and state["prediction_type"] == "v_prediction"
    checkpoint = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=False)
    assert checkpoint["prediction_type"] == "v_prediction" and checkpoint["step"] == 4

    model = EmbeddedTextToImage(tmp_path / "t2i", text=minilm, bfloat16=False)  # the app loads the export
    assert model.scheduler.config.prediction_type == "v_prediction"
    assert model.sample_tensor(["a red dress"], [0], 1).shape == (1, 3, 32, 32)


def test_a_bad_prediction_type_fails_clearly(train_t2i, tmp_path, capsys):
    with pytest.raises(ValueError, match="prediction_type must be 'v_prediction' or 'epsilon'"):
        run(train_t2i, tmp_path, capsys, steps=1, prediction_type="sample")


@pytest.mark.emoji_data
def test_the_emoji_world_trains_at_64_px_into_a_run_folder_not_the_shipped_weights(
    train_t2i, tmp_path, capsys, monkeypatch, minilm
):
    from pasta.backends.embedded_t2i import EmbeddedT2IConfig, EmbeddedTextToImage

    monkeypatch.chdir(tmp_path)
    out = run(train_t2i, tmp_path, capsys, steps=2, world="emoji", out=None, checkpoint=None)
    assert "stopped at step 2" in out
    folder = tmp_path / "runs" / "t2i-emoji" / "model"  # the default: a run folder, never models/embedded
    assert EmbeddedT2IConfig.load(folder) == EmbeddedT2IConfig.for_world("emoji")
    assert (tmp_path / "runs" / "t2i-emoji" / "checkpoint.pt").exists()
    spent = json.loads((folder / "train_state.json").read_text())["train_seconds"]
    assert set(spent) == {"cpu"} and spent["cpu"] > 0  # what the shipped weights cost travels with them
    model = EmbeddedTextToImage(folder, text=minilm, bfloat16=False)
    assert model.sample_tensor(["a castle at sunset"], [0], 1).shape == (1, 3, 64, 64)
    monkeypatch.setattr(train_t2i, "SHIPPED", {"emoji": folder})  # a fresh machine: the shipped weights warm-start
    out = run(
        train_t2i,
        tmp_path,
        capsys,
        steps=3,
        world="emoji",
        out=tmp_path / "next",
        checkpoint=tmp_path / "fresh" / "last.pt",
        init_from=None,
    )
    assert f"warm start from the exported weights in {folder} (step 2)" in out and "stopped at step 3" in out


def test_a_shipped_loss_curve_plots(tmp_path):
    from pasta.tools.loss_curve import main, read_curve

    curve = tmp_path / "loss_curve.jsonl"
    curve.write_text("".join(json.dumps({"step": 50 * (i + 1), "loss": 1 / (i + 1)}) + "\n" for i in range(6)))
    assert read_curve(curve) == ([50, 100, 150, 200, 250, 300], [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6])
    assert main([str(curve), str(tmp_path / "loss.png")]) == 0 and (tmp_path / "loss.png").stat().st_size > 1000
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="holds no loss values"):
        read_curve(tmp_path / "empty.jsonl")
