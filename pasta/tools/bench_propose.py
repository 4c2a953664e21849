"""Benchmarks: each prints a table and writes JSON. Targets live here, not in timed tests.

`pasta bench propose`: median latency of proposing 25 candidates per embedded generator over the fixed prompt
set in data/prompts/bench_prompts.txt, and each generator's peak memory (measured in its own process, so the
numbers do not mix).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

from pasta.config import Settings
from pasta.paths import DATA_DIR

PROPOSE_TARGETS_S = {"retrieval": 0.050, "lmm": 8.0}


def read_prompts(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _propose_worker(generator: str, settings: dict, prompts: list[str], repeats: int, queue) -> None:
    import torch

    torch.set_num_threads(2)
    from pasta.components import make_candidate_generator

    before = _peak_rss_mb()
    t0 = time.perf_counter()
    gen = make_candidate_generator(Settings(**settings), generator)
    load = time.perf_counter() - t0
    gen.propose([prompts[0]], n=25)  # warm-up: caches, lazy init
    times, from_lmm = [], []
    for _ in range(repeats):
        for prompt in prompts:
            t0 = time.perf_counter()
            out = gen.propose([prompt], n=25)
            times.append(time.perf_counter() - t0)
            assert len(out) == 25
            if hasattr(gen, "last_stats"):
                from_lmm.append(gen.last_stats["from_lmm"])
    queue.put(
        {
            "generator": generator,
            "load_s": load,
            "calls": len(times),
            "median_s": statistics.median(times),
            "p90_s": sorted(times)[int(0.9 * (len(times) - 1))],
            "min_s": min(times),
            "peak_rss_mb": _peak_rss_mb(),
            "rss_before_load_mb": before,
            "share_from_lmm": statistics.mean(from_lmm) if from_lmm else None,
        }
    )


def main(argv: list[str]) -> int:
    from pasta.config import settings_arguments, settings_from_args

    p = argparse.ArgumentParser(prog="pasta bench propose", parents=[settings_arguments()])
    p.add_argument("--prompts", type=Path, default=DATA_DIR / "prompts" / "bench_prompts.txt")
    p.add_argument("--generators", default="retrieval,lmm", help="comma-separated: retrieval,lmm")
    p.add_argument("--repeats", type=int, default=3, help="passes over the prompt set (retrieval); lmm does 1")
    p.add_argument("--out", type=Path, default=Path("bench-results/propose.json"))
    args = p.parse_args(argv)
    settings = settings_from_args(args)
    prompts = read_prompts(args.prompts)
    ctx = mp.get_context("spawn")
    rows = []
    for name in args.generators.split(","):
        queue = ctx.Queue()
        repeats = args.repeats if name == "retrieval" else 1
        proc = ctx.Process(target=_propose_worker, args=(name, asdict(settings), prompts, repeats, queue))
        proc.start()
        row = None
        while row is None:
            try:
                row = queue.get(timeout=1.0)
            except Exception:  # queue.Empty: keep waiting while the worker lives
                if not proc.is_alive():
                    print(
                        f"pasta bench propose: error: the {name} worker exited with code {proc.exitcode}",
                        file=sys.stderr,
                    )
                    return 1
        proc.join()
        row["target_s"] = PROPOSE_TARGETS_S.get(name)
        row["meets_target"] = row["target_s"] is None or row["median_s"] <= row["target_s"]
        rows.append(row)
    print(
        f"{'generator':<10} {'calls':>5} {'median':>9} {'p90':>9} {'target':>8} {'ok':>3} {'peak RSS':>9} {'load':>6}"
    )
    for r in rows:
        print(
            f"{r['generator']:<10} {r['calls']:>5} {r['median_s'] * 1000:>7.1f}ms {r['p90_s'] * 1000:>7.1f}ms "
            f"{r['target_s'] * 1000:>6.0f}ms {'yes' if r['meets_target'] else 'NO':>3} "
            f"{r['peak_rss_mb']:>7.0f}MB {r['load_s']:>5.1f}s"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "propose",
        "n_candidates": 25,
        "prompts": str(args.prompts),
        "n_prompts": len(prompts),
        "machine": {"cpus": mp.cpu_count(), "python": platform.python_version()},
        "results": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0
