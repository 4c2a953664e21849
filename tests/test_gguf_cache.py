"""The converted-model cache keeps what starts use and removes a GGUF file's conversions no start has used."""

import os

from pasta.backends import gguf_cache


def make(folder, age_days, now):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    os.utime(folder, (now - age_days * 86400, now - age_days * 86400))
    return folder


def test_a_used_conversion_stays_and_old_siblings_and_dead_temporaries_go(tmp_path):
    now = 2_000_000_000.0
    cache = tmp_path / "gguf"
    used = make(cache / "SmolLM2-135M-Instruct-Q8_0-aaaaaaaaaaaaaaaa", 90, now)
    old = make(cache / "SmolLM2-135M-Instruct-Q8_0-bbbbbbbbbbbbbbbb", 31, now)
    recent = make(cache / "SmolLM2-135M-Instruct-Q8_0-cccccccccccccccc", 3, now)  # another app may still use it
    other_model = make(cache / "Qwen2.5-0.5B-Instruct-Q4-dddddddddddddddd", 200, now)  # not this file's
    dead = make(cache / "SmolLM2-135M-Instruct-Q8_0-eeeeeeeeeeeeeeee.123.tmp", 2, now)
    live = make(cache / "SmolLM2-135M-Instruct-Q8_0-ffffffffffffffff.456.tmp", 0.01, now)  # converting right now

    removed = gguf_cache.mark_used_and_prune(used, now=now)
    assert sorted(removed) == sorted([old, dead])
    assert sorted(p.name for p in cache.iterdir()) == sorted(p.name for p in (used, recent, other_model, live))
    assert used.stat().st_mtime == now  # marked used: the next start's pruning keeps it
    assert gguf_cache.mark_used_and_prune(used, now=now) == []


def test_pruning_a_cache_it_cannot_read_never_raises(tmp_path):
    assert gguf_cache.mark_used_and_prune(tmp_path / "gone" / "model-0123456789abcdef") == []
