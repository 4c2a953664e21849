"""models/train_t2i.py end to end on a few steps: export in the app's layout, resume, switch of prediction type."""

import json

import pytest
import torch
from model_scripts import load_script

pytestmark = pytest.mark.fashion_mnist


@pytest.fixture(scope="module")
def train_t2i():
    return load_script("train_t2i")


def run(train_t2i, tmp_path, capsys, **overrides) -> str:
    cfg = train_t2i.TrainT2IConfig(out=tmp_path / "t2i", checkpoint=tmp_path / "ckpt" / "last.pt", batch_size=2,
                                   save_every=1, threads=1, device="cpu", warmup_steps=1, **overrides)
    train_t2i.main(cfg)
    return capsys.readouterr().out


def test_train_export_resume_and_switch_prediction_type(train_t2i, tmp_path, capsys, minilm):
    from pasta.backends.embedded_t2i import EmbeddedTextToImage

    out = run(train_t2i, tmp_path, capsys, steps=2, prediction_type="epsilon")
    assert "stopped at step 2" in out
    state = json.loads((tmp_path / "t2i" / "train_state.json").read_text())
    assert state == {"step": 2, "prediction_type": "epsilon"}
    assert not (tmp_path / "t2i.tmp").exists()  # the export is atomic: no half-written folder is left

    out = run(train_t2i, tmp_path, capsys, steps=3, prediction_type="epsilon")
    assert "resumed from" in out and "at step 2" in out and "stopped at step 3" in out

    out = run(train_t2i, tmp_path, capsys, steps=4)  # v-prediction, the default: warm start from the eps weights
    assert "warm start of a v_prediction model from the epsilon checkpoint" in out
    assert json.loads((tmp_path / "t2i" / "train_state.json").read_text()) == {"step": 4,
                                                                               "prediction_type": "v_prediction"}
    checkpoint = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=False)
    assert checkpoint["prediction_type"] == "v_prediction" and checkpoint["step"] == 4

    model = EmbeddedTextToImage(tmp_path / "t2i", text=minilm, bfloat16=False)  # the app loads the export
    assert model.scheduler.config.prediction_type == "v_prediction"
    assert model.sample_tensor(["a red dress"], [0], 1).shape == (1, 3, 32, 32)


def test_a_bad_prediction_type_fails_clearly(train_t2i, tmp_path, capsys):
    with pytest.raises(ValueError, match="prediction_type must be 'v_prediction' or 'epsilon'"):
        run(train_t2i, tmp_path, capsys, steps=1, prediction_type="sample")
