"""The speed of one turn as the app renders it: a slate of L = 4 prompts, M = 4 images each (PASTA), timed as the
median of a few runs after one warm-up. Target (issues 18 and earlier): <= 3 s on 2 CPU threads."""

from __future__ import annotations

import statistics
import time

TURN_SECONDS_TARGET = 3.0
TURN_PROMPTS, TURN_IMAGES = 4, 4


def time_turn(
    t2i, prompts: list[str], seed: int = 0, repeats: int = 5, progress: bool = False
) -> tuple[float, list[float]]:
    """(median seconds, every timing) of `t2i.generate` on the first TURN_PROMPTS of `prompts` (repeated when
    fewer), TURN_IMAGES each; generate() includes what the app does to its images."""
    from pasta.console import progress_bar

    turn = (list(prompts) * TURN_PROMPTS)[:TURN_PROMPTS]
    seeds = [seed * 1_000_003 + 10_000 + i for i in range(TURN_PROMPTS)]
    t2i.generate(turn, seeds, TURN_IMAGES)  # warm-up
    times = []
    for _ in progress_bar(range(repeats), desc="time a turn", disable=not progress):
        t1 = time.perf_counter()
        t2i.generate(turn, seeds, TURN_IMAGES)
        times.append(time.perf_counter() - t1)
    return statistics.median(times), times
