"""What people read: progress bars only on a terminal (a line per stage elsewhere). (No library load bars on a
first start: tests/test_lmm_generator.py, where that start happens.)"""

from __future__ import annotations

from pasta.console import progress_bar


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
