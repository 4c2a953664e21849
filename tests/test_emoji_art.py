"""Named emoji artwork from Debian's packages: which emoji are subjects to draw, and their real bitmaps."""

from __future__ import annotations

import numpy as np
import pytest

from pasta.worlds.emoji_art import SKIN_TONES, EmojiFont, read_emoji_test, subjects

CHECKED = [
    "castle",
    "cat face",
    "dog",
    "crescent moon",
    "rose",
    "red apple",
    "racing car",
    "house with garden",
    "rocket",
    "ship",
    "mountain",
]


@pytest.fixture(scope="module")
def font():
    return EmojiFont()


@pytest.mark.emoji_data
def test_over_a_thousand_subjects_one_per_concept(font):
    chosen = subjects(font)
    names = [e.name for e in chosen]
    assert len(chosen) >= 1000 and len(set(names)) == len(names)
    assert not {e.group for e in chosen} & {"Flags", "Symbols", "Component"}
    assert not any(SKIN_TONES & set(e.sequence) for e in chosen)
    assert "astronaut" in names and "woman astronaut" not in names and "man astronaut" not in names
    assert "person running" in names and "man running" not in names
    assert set(CHECKED) <= set(names)
    assert sum(bool(e.keywords) for e in chosen) / len(chosen) > 0.9  # CLDR keywords for captions


@pytest.mark.emoji_data
def test_every_listed_emoji_has_artwork_and_subjects_extract_cleanly(font):
    assert all(font.glyph(e.sequence) is not None for e in read_emoji_test())
    by_name = {e.name: e for e in subjects(font)}
    for name in [*CHECKED, "astronaut", "firefighter"]:
        image = font.image(by_name[name].sequence)
        assert image.mode == "RGBA" and image.size == (136, 128)
        alpha = np.asarray(image)[..., 3]
        assert 0.1 < (alpha > 0).mean() < 1.0, name  # a drawing on a transparent background


def test_missing_data_gets_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PASTA_EMOJI_FONT", str(tmp_path / "none.ttf"))
    monkeypatch.setenv("PASTA_EMOJI_TEST", str(tmp_path / "none.txt"))
    with pytest.raises(FileNotFoundError, match="apt-get install fonts-noto-color-emoji"):
        EmojiFont()
    with pytest.raises(FileNotFoundError, match="PASTA_EMOJI_TEST"):
        read_emoji_test()
