"""What people read: progress bars only on a terminal (a line per stage elsewhere), no library load bars."""

from __future__ import annotations

from pathlib import Path

from pasta.console import progress_bar

ROOT = Path(__file__).resolve().parents[1]


def test_off_a_terminal_a_bar_is_one_line_when_its_stage_starts_and_one_when_it_ends(capsys, monkeypatch):
    monkeypatch.delenv("PASTA_PROGRESS", raising=False)
    assert sum(progress_bar(range(500), desc="embed captions")) == sum(range(500))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0] == "embed captions: started (500 steps)"
    assert lines[1].startswith("embed captions: done in ")


def test_progress_flag_draws_the_bar_anywhere_and_disable_silences_it(capsys, monkeypatch):
    monkeypatch.setenv("PASTA_PROGRESS", "1")
    list(progress_bar(range(3), desc="train"))
    assert "100%" in capsys.readouterr().err
    monkeypatch.delenv("PASTA_PROGRESS")
    list(progress_bar(range(3), desc="train", disable=True))
    assert capsys.readouterr().err == ""


def test_loading_the_embedded_models_prints_no_library_bars(smollm2_first_start):
    """A first start (the GGUF converted, every model loaded) says only what people need: no library bars."""
    done, _ = smollm2_first_start
    assert done.returncode == 0, done.stderr
    assert "25 candidates from" in done.stdout
    for noise in ("Loading weights", "de-quantizing", "it/s]", "%|"):
        assert noise not in done.stderr, done.stderr[-2000:]
