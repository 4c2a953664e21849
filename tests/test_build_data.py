"""The training-data builder writes the trainers' data stream down: reproducible, held-out triples kept apart."""

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from model_scripts import load_script
from PIL import Image

from pasta.worlds import fashion

pytestmark = pytest.mark.fashion_mnist


@pytest.fixture(scope="module")
def build_data():
    return load_script("build_data")


def test_same_seed_same_bytes_and_every_row_is_a_captioned_image(build_data, tmp_path):
    a, b = tmp_path / "a" / "train.parquet", tmp_path / "b" / "train.parquet"
    info = build_data.build(build_data.BuildDataConfig(out=a, n=40, rows_per_group=16), progress=False)
    build_data.build(build_data.BuildDataConfig(out=b, n=40, rows_per_group=16), progress=False)
    assert a.read_bytes() == b.read_bytes() and info["rows"] == 40
    table = pq.read_table(a).to_pylist()
    assert len(table) == 40 and Image.open(info["preview"]).size == (8 * 32 * 3, 5 * 32 * 3)
    for row in table:
        image = np.asarray(Image.open(io.BytesIO(row["image_png"])))
        assert image.shape == (32, 32, 3)
        attrs = fashion.Attributes(
            **{k: row[k] for k in ("garment", "colour", "pattern", "background", "style", "size", "position")}
        )
        assert row["caption"] and not (
            attrs.visible_pattern != "plain" and fashion.is_held_out(attrs.garment, attrs.colour, attrs.visible_pattern)
        )
    other = build_data.build(build_data.BuildDataConfig(out=tmp_path / "c.parquet", n=40, seed=1), progress=False)
    assert pq.read_table(other["out"]).column("caption").to_pylist() != [r["caption"] for r in table]


def test_the_eval_split_holds_only_held_out_triples(build_data, tmp_path):
    out = tmp_path / "eval.parquet"
    build_data.build(build_data.BuildDataConfig(out=out, n=24, split="eval"), progress=False)
    for row in pq.read_table(out).to_pylist():
        pattern = row["pattern"] if row["style"] in ("photo", "flat") else "plain"
        assert pattern != "plain" and fashion.is_held_out(row["garment"], row["colour"], pattern)


def test_bad_settings_fail_clearly_and_write_nothing(build_data, tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'eval'"):
        build_data.build(build_data.BuildDataConfig(out=tmp_path / "x.parquet", split="test"), progress=False)
    with pytest.raises(ValueError, match="n must be positive"):
        build_data.build(build_data.BuildDataConfig(out=tmp_path / "x.parquet", n=0), progress=False)
    assert not list(tmp_path.iterdir())
