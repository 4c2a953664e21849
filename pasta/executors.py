"""Run a workload over chunks of jobs here or on many machines: in this process, in a pool of local processes, or
on Ray actors (`pip install -e ".[scale]"`).

A workload is a picklable callable from a list of jobs to a list of results, pure in its jobs (the same jobs give
the same results wherever they run). Each worker receives it once and keeps it: a simulated world and a policy,
or a text-to-image model it loads on its first call, serve every chunk that worker runs. Jobs travel in chunks so
that scheduling costs once per chunk, not once per job.

Results come back with their chunk's key, so a caller keeps each chunk once however often it ran. On Ray a worker
whose process dies is restarted (`max_restarts`) and the chunk it held is sent again (`max_task_retries`): a run
survives a lost worker and still returns every job exactly once.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import tyro

EXECUTORS = ("local", "processes", "ray")
Workload = Callable[[list[Any]], list[Any]]
Chunk = tuple[Hashable, list[Any]]
"""A key (a chunk index, a shard name) and the jobs of that chunk."""


@dataclass
class ExecutorConfig:
    """Where a workload runs. The same command line works on a laptop and on a Ray cluster."""

    executor: Literal["local", "processes", "ray"] = "local"
    """local: this process; processes: a pool of local processes; ray: Ray actors (a local Ray unless
    --ray-address or RAY_ADDRESS names a cluster)."""
    workers: int | None = None
    """Parallel workers (default: this machine's cores for processes, the cluster's CPUs for Ray)."""
    ray_address: str | None = None
    """A running Ray cluster, e.g. 10.0.0.1:6379 or "auto" (default: RAY_ADDRESS, else start a local Ray)."""
    chunk_size: int | None = None
    """Jobs per task (default: about four tasks per worker, at most 256 jobs)."""


Scale = Annotated[ExecutorConfig, tyro.conf.OmitArgPrefixes]
"""A command's executor options as plain flags: `--executor ray --workers 8 --ray-address ...`."""


def chunked(jobs: Sequence[Any], size: int) -> list[Chunk]:
    """Consecutive chunks of at most `size` jobs, keyed by their index."""
    return [(i, list(jobs[start : start + size])) for i, start in enumerate(range(0, len(jobs), size))]


def default_chunk_size(n_jobs: int, workers: int) -> int:
    return max(1, min(256, math.ceil(n_jobs / (4 * max(1, workers)))))


def map_jobs(workload: Workload, jobs: Sequence[Any], cfg: ExecutorConfig, desc: str | None = None) -> list[Any]:
    """workload over every job, results in the jobs' order, whatever executor ran them."""
    workers = resolved_workers(cfg)
    chunks = chunked(jobs, cfg.chunk_size or default_chunk_size(len(jobs), workers))
    done: dict[Hashable, list[Any]] = {}
    for key, results in map_chunks(workload, chunks, cfg, desc=desc):
        if len(results) != len(chunks[key][1]):
            raise RuntimeError(f"chunk {key}: {len(results)} results for {len(chunks[key][1])} jobs")
        done[key] = results  # a chunk sent twice (a worker restarted) is kept once
    return [r for key, _ in chunks for r in done[key]]


def map_chunks(
    workload: Workload,
    chunks: Sequence[Chunk],
    cfg: ExecutorConfig,
    desc: str | None = None,
    gpus_per_worker: float = 0.0,
) -> Iterator[tuple[Hashable, list[Any]]]:
    """(key, results) for every chunk as it finishes (in order only for the local executor)."""
    from pasta.console import progress_bar

    if cfg.executor not in EXECUTORS:
        raise ValueError(f"unknown executor {cfg.executor!r}: choose one of {', '.join(EXECUTORS)}")
    run = {"local": _local, "processes": _processes, "ray": _ray}[cfg.executor]
    with progress_bar(total=sum(len(jobs) for _, jobs in chunks), desc=desc or cfg.executor) as bar:
        for key, results in run(workload, list(chunks), cfg, gpus_per_worker):
            bar.update(len(results))
            yield key, results


def resolved_workers(cfg: ExecutorConfig) -> int:
    if cfg.workers is not None:
        if cfg.workers < 1:
            raise ValueError(f"workers must be at least 1, got {cfg.workers}")
        return cfg.workers
    if cfg.executor == "ray":
        ray = require_ray()
        if ray.is_initialized():
            return max(1, int(ray.cluster_resources().get("CPU", 1)))
    return os.cpu_count() or 1


def one_thread() -> None:
    """Workers share the machine's cores: each runs torch on one thread (OpenMP pools per process oversubscribe)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _local(workload: Workload, chunks: list[Chunk], cfg: ExecutorConfig, gpus: float):
    for key, jobs in chunks:
        yield key, workload(jobs)


_installed: Workload | None = None
"""The workload of this worker process (processes executor): sent once, when the process starts."""


def _install(workload: Workload) -> None:
    global _installed
    one_thread()
    _installed = workload


def _run_installed(key: Hashable, jobs: list[Any]) -> tuple[Hashable, list[Any]]:
    return key, _installed(jobs)


def _processes(workload: Workload, chunks: list[Chunk], cfg: ExecutorConfig, gpus: float):
    # spawn, not fork: a forked child inherits the parent's OpenMP and Gradio threads in whatever state they were
    workers = min(resolved_workers(cfg), max(1, len(chunks)))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_install, initargs=(workload,)) as pool:
        queue, pending = deque(chunks), set()
        while queue or pending:
            while queue and len(pending) < 2 * workers:  # a bounded queue: results stream back as they finish
                pending.add(pool.submit(_run_installed, *queue.popleft()))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()


class ChunkRunner:
    """A Ray actor's body: holds one workload for the life of its worker process (a restarted actor reads it
    again from the object the driver keeps in the object store for the whole run; Ray logs that it relies on
    this when actors start)."""

    def __init__(self, workload: Workload) -> None:
        one_thread()
        self.workload = workload

    def run(self, key: Hashable, jobs: list[Any]) -> tuple[Hashable, list[Any]]:
        return key, self.workload(jobs)

    def pid(self) -> int:
        return os.getpid()


def require_ray():
    try:
        import ray
    except ImportError as error:
        raise ImportError('the ray executor needs Ray: pip install -e ".[scale]"') from error
    return ray


def connect_ray(cfg: ExecutorConfig) -> bool:
    """Join the cluster cfg names (or RAY_ADDRESS), else start a local Ray with `workers` CPUs; True when this call
    started or joined it (and so should shut it down)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    address = cfg.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(num_cpus=cfg.workers or os.cpu_count(), include_dashboard=False, log_to_driver=True)
    return True


def _ray(workload: Workload, chunks: list[Chunk], cfg: ExecutorConfig, gpus: float):
    import ray

    started = connect_ray(cfg)
    actors = []
    try:
        workers = min(resolved_workers(cfg), max(1, len(chunks)))
        actor_class = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=-1, max_task_retries=-1)(ChunkRunner)
        shared = ray.put(workload)  # one copy in the object store; every actor (and every restart) reads it
        actors = [actor_class.remote(shared) for _ in range(workers)]
        queue, free, pending = deque(chunks), deque(actors * 2), {}  # two chunks in flight per actor
        while queue or pending:
            while queue and free:
                actor = free.popleft()
                pending[actor.run.remote(*queue.popleft())] = actor
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                free.append(pending.pop(ref))
                yield ray.get(ref)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


__all__ = ["EXECUTORS", "ChunkRunner", "ExecutorConfig", "Scale", "chunked", "connect_ray", "map_chunks", "map_jobs"]
