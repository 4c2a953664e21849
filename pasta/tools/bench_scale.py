"""`pasta bench scale`: the same simulated evaluation and the same bulk render through each executor, side by side
in one run; prints a table and writes JSON.

Measured: episodes per second of one evaluation (held-out users x 5 turns against the shipped IQL agent) in this
process, in a process pool and on Ray with 1 and 2 workers, every run checked against the local episodes; Ray's
scheduling overhead per task (one episode per task against large chunks, on one worker); images per second of a
bulk render here and on Ray. Wall times include starting the workers, as a researcher's command pays them.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pasta.executors import ExecutorConfig, connect_ray

TARGETS = {"ray_vs_processes_throughput": 1 / 1.3}
"""Ray within 1.3x of the process pool's episodes per second on the same machine."""


@dataclass
class BenchScaleConfig:
    users: int = 2000
    """Held-out users of the evaluation (x 5 turns each)."""
    turns: int = 5
    workers: int = 2
    overhead_episodes: int = 400
    """Episodes of the per-task overhead measurement (one task each, then in large chunks)."""
    render_prompts: int = 32
    """Prompts of the bulk render (x images_per_prompt images), from the simulated world's captions."""
    images_per_prompt: int = 4
    ray: bool = True
    """Also measure on Ray (needs `pip install -e ".[scale]"`)."""
    out: Path = Path("runs/bench_scale.json")
    seed: int = 0


def same_episodes(a, b) -> bool:
    return all(
        [(s.slate, s.choice, s.prompt_index) for s in x.turns] == [(s.slate, s.choice, s.prompt_index) for s in y.turns]
        for x, y in zip(a, b, strict=True)
    )


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_rollouts(cfg: BenchScaleConfig) -> dict:
    from user_sim.policies import trained_agent
    from user_sim.rollout import play
    from user_sim.users import make_users, planted_population
    from user_sim.world import EmbeddingWorld

    world, agent = EmbeddingWorld(), trained_agent()
    users = make_users(world, planted_population(4, seed=cfg.seed), cfg.users, seed=cfg.seed + 2)
    seeds = [cfg.seed * 7_000_003 + i for i in range(cfg.users)]

    def run(executor: ExecutorConfig, n: int = cfg.users):
        return timed(lambda: play(agent, world, users[:n], seeds[:n], executor, turns=cfg.turns))

    runs = {}
    reference, seconds = run(ExecutorConfig("local"))
    runs["local"] = {"workers": 1, "seconds": seconds}
    plan = [("processes", ExecutorConfig("processes", workers=cfg.workers))]
    if cfg.ray:
        plan += [(f"ray x{w}", ExecutorConfig("ray", workers=w)) for w in sorted({1, cfg.workers})]
    for name, executor in plan:
        episodes, seconds = run(executor)
        runs[name] = {"workers": executor.workers, "seconds": seconds, "identical": same_episodes(reference, episodes)}
    for r in runs.values():
        r["episodes_per_second"] = cfg.users / r["seconds"]
    out = {"episodes": cfg.users, "turns": cfg.turns, "runs": runs}
    out["per_episode_ms_local"] = 1000 * runs["local"]["seconds"] / cfg.users
    if cfg.ray:
        n = cfg.overhead_episodes
        one = ExecutorConfig("ray", workers=1, chunk_size=1)
        big = ExecutorConfig("ray", workers=1, chunk_size=max(1, n // 4))
        run(one, 8)  # workers warm: the difference below is scheduling, not start-up
        _, t_one = run(one, n)
        _, t_big = run(big, n)
        out["overhead"] = {
            "episodes": n,
            "seconds_one_per_task": t_one,
            "seconds_chunks_of": [big.chunk_size, t_big],
            "per_task_ms": 1000 * (t_one - t_big) / (n - 4),
        }
        best_ray = max(v["episodes_per_second"] for k, v in runs.items() if k.startswith("ray"))
        out["ray_vs_processes_throughput"] = best_ray / runs["processes"]["episodes_per_second"]
        if f"ray x{cfg.workers}" in runs and cfg.workers > 1:
            out["ray_speedup_2_vs_1_worker"] = runs["ray x1"]["seconds"] / runs[f"ray x{cfg.workers}"]["seconds"]
    return out


def bench_render(cfg: BenchScaleConfig, folder: Path) -> dict:
    from pasta.tools.render_bank import RenderBankConfig, render_bank
    from user_sim.world import EmbeddingWorld

    captions = EmbeddingWorld().captions
    rng = np.random.default_rng(cfg.seed)
    prompts = folder / "prompts.txt"
    prompts.write_text("\n".join(captions[i] for i in rng.choice(len(captions), cfg.render_prompts, False)) + "\n")
    out = {}
    plan = [("local", ExecutorConfig("local"))] + ([("ray", ExecutorConfig("ray", workers=cfg.workers))] * cfg.ray)
    for name, executor in plan:
        r = render_bank(
            RenderBankConfig(
                out=folder / name,
                prompts=prompts,
                images_per_prompt=cfg.images_per_prompt,
                shard_size=4,
                scale=executor,
            )
        )
        out[name] = {
            "images": r["images_rendered"],
            "seconds": r["seconds"],
            "images_per_second": r["images_per_second"],
        }
    return out


def main(argv: list[str]) -> int:
    import tempfile

    import torch
    import tyro

    cfg = tyro.cli(BenchScaleConfig, args=argv, prog="pasta bench scale")
    if cfg.ray:
        t0 = time.perf_counter()
        connect_ray(ExecutorConfig("ray", workers=cfg.workers))
        ray_start = time.perf_counter() - t0
    rollouts = bench_rollouts(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        render = bench_render(cfg, Path(tmp))
    result = {
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "ray_start_s": ray_start if cfg.ray else None,
        "rollouts": rollouts,
        "render": render,
        "targets": {
            k: {"target": t, "value": rollouts.get(k), "met": rollouts.get(k) is not None and rollouts[k] >= t}
            for k, t in TARGETS.items()
        },
    }
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{rollouts['episodes']} simulated users x {rollouts['turns']} turns against the shipped IQL agent")
    print(f"{'executor':<12} {'workers':>7} {'seconds':>8} {'episodes/s':>11} {'same episodes':>14}")
    for name, r in rollouts["runs"].items():
        print(
            f"{name:<12} {r['workers']:>7} {r['seconds']:>8.2f} {r['episodes_per_second']:>11.0f} "
            f"{str(r.get('identical', 'reference')):>14}"
        )
    print(f"per episode here: {rollouts['per_episode_ms_local']:.2f} ms")
    if "overhead" in rollouts:
        o = rollouts["overhead"]
        print(
            f"Ray scheduling overhead: {o['per_task_ms']:.2f} ms per task ({o['episodes']} episodes: "
            f"{o['seconds_one_per_task']:.2f} s one per task, {o['seconds_chunks_of'][1]:.2f} s in chunks of "
            f"{o['seconds_chunks_of'][0]}); Ray started in {result['ray_start_s']:.1f} s"
        )
        if "ray_speedup_2_vs_1_worker" in rollouts:
            print(f"Ray speed-up, {cfg.workers} workers vs 1: {rollouts['ray_speedup_2_vs_1_worker']:.2f}x")
    print(f"{'render':<12} {'images':>7} {'seconds':>8} {'images/s':>11}")
    for name, r in render.items():
        print(f"{name:<12} {r['images']:>7} {r['seconds']:>8.2f} {r['images_per_second']:>11.2f}")
    for name, t in result["targets"].items():
        value = "n/a" if t["value"] is None else f"{t['value']:.2f}"
        print(f"{name:<30} {value:>6} (target >= {t['target']:.2f}) {'met' if t['met'] else 'NOT met'}")
    print(f"wrote {cfg.out}")
    return 0
