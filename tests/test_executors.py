"""Simulated sessions give the same episodes in this process, in a pool of processes and on Ray actors, and a Ray
run survives a killed worker with every episode exactly once. Ray tests start a real local Ray (2 CPUs) and skip
with the reason where `ray` is not installed (`pip install -e ".[scale]"`)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from pasta.executors import ExecutorConfig, chunked, map_chunks, map_jobs
from pasta.policy.slate import LMMOrderPolicy
from user_sim.policies import trained_agent
from user_sim.rollout import Rollouts, play, play_many
from user_sim.users import make_users, planted_population
from user_sim.world import EmbeddingWorld


@pytest.fixture(scope="module")
def world():
    return EmbeddingWorld()


@pytest.fixture(scope="module")
def users(world):
    return make_users(world, planted_population(4, seed=0), 24, seed=1)


@pytest.fixture(scope="module")
def agent():
    return trained_agent()


def same_episodes(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x.user_id, x.seed, x.initial_index) == (y.user_id, y.seed, y.initial_index)
        for s, t in zip(x.turns, y.turns, strict=True):
            assert (s.prompt_index, s.slate, s.choice) == (t.prompt_index, t.slate, t.choice)
            assert s.candidate_indices == t.candidate_indices and s.candidates == t.candidates
            np.testing.assert_allclose(s.scores, t.scores, rtol=1e-5, atol=1e-6)
        assert np.array_equal(x.utilities(), y.utilities())


def seeds(n: int) -> list[int]:
    return [1000 + 7 * i for i in range(n)]


def test_processes_give_the_local_episodes(world, users, agent):
    local = play(agent, world, users, seeds(len(users)))
    pooled = play(agent, world, users, seeds(len(users)), ExecutorConfig("processes", workers=2, chunk_size=5))
    same_episodes(local, pooled)
    assert all(len(e.select_seconds) == 5 for e in pooled)  # timings travel back with the episodes


def test_many_policies_in_one_pool_give_each_policys_own_episodes(world, users, agent):
    """`play_many` plays every policy on one set of workers; each policy's episodes are those `play` gives it."""
    lmm = LMMOrderPolicy()
    both = play_many(
        {"agent": agent, lmm.name: lmm}, world, users, seeds(len(users)), ExecutorConfig("processes", workers=2)
    )
    assert list(both) == ["agent", lmm.name]
    same_episodes(both["agent"], play(agent, world, users, seeds(len(users))))
    same_episodes(both[lmm.name], play(lmm, world, users, seeds(len(users))))
    assert all(e.seconds > 0 for e in both["agent"])


def test_chunks_cover_every_job_once_in_order():
    chunks = chunked(list(range(10)), 4)
    assert [key for key, _ in chunks] == [0, 1, 2]
    assert [j for _, jobs in chunks for j in jobs] == list(range(10))
    assert map_jobs(_square, list(range(10)), ExecutorConfig(chunk_size=3)) == [i * i for i in range(10)]


def _square(jobs: list[int]) -> list[int]:
    return [j * j for j in jobs]


def test_bad_executor_settings_say_what_is_wrong(world, users):
    with pytest.raises(ValueError, match="unknown executor 'dask'"):
        map_jobs(_square, [1], ExecutorConfig("dask"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers must be at least 1"):
        map_jobs(_square, [1], ExecutorConfig("processes", workers=0))
    with pytest.raises(ValueError, match="3 seeds for 24 users"):
        play(LMMOrderPolicy(), world, users, [1, 2, 3])


def test_the_ray_executor_without_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as where the extra is not installed
    with pytest.raises(ImportError, match=r'needs Ray: pip install -e "\.\[scale\]"'):
        map_jobs(_square, [1, 2], ExecutorConfig("ray"))


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason='Ray is an optional extra: pip install -e ".[scale]"')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_gives_the_local_episodes(local_ray, world, users, agent):
    local = play(agent, world, users, seeds(len(users)))
    on_ray = play(agent, world, users, seeds(len(users)), ExecutorConfig("ray", workers=2, chunk_size=4))
    same_episodes(local, on_ray)


def actor_pids() -> list[int]:
    """Processes of this machine's Ray actors running a workload (their title names the actor class)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::ChunkRunner"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_a_killed_ray_worker_loses_no_episode(local_ray, world, users):
    policy = LMMOrderPolicy()
    workload = Rollouts({policy.name: policy}, world, users)
    jobs = [(policy.name, i, seed) for i, seed in enumerate(seeds(len(users)))]
    chunks = chunked(jobs, 1)  # one episode per task: the kill lands mid-run
    received, killed = [], []
    for key, episodes in map_chunks(workload, chunks, ExecutorConfig("ray", workers=2)):
        received.append((key, episodes))
        if not killed:
            pids = actor_pids()
            assert pids, "no Ray actor process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
    keys = [key for key, _ in received]
    assert sorted(keys) == list(range(len(users)))  # every episode, exactly once
    assert len(received) > 1 and killed
    by_key = dict(received)
    same_episodes([e for key in range(len(users)) for e in by_key[key]], play(policy, world, users, seeds(len(users))))


def logged_sessions(db) -> list[tuple]:
    from pasta.logbook import LogStore

    with LogStore(db) as store:
        return [
            (e["user_id"], e["initial_prompt"], [(t["prompt"], t["choice"]["column"]) for t in e["turns"]])
            for e in store.episodes(source="simulator")
        ]


def test_pasta_simulate_on_ray_logs_the_local_sessions(local_ray, tmp_path, capsys):
    from user_sim.simulate import main

    assert main(["--db", str(tmp_path / "local.sqlite"), "--users", "12", "--policy", "random"]) == 0
    argv = ["--db", str(tmp_path / "ray.sqlite"), "--users", "12", "--policy", "random", "--executor", "ray"]
    assert main([*argv, "--workers", "2", "--chunk-size", "3"]) == 0
    assert "12 episodes" in capsys.readouterr().out
    local, on_ray = logged_sessions(tmp_path / "local.sqlite"), logged_sessions(tmp_path / "ray.sqlite")
    assert len(local) == 12 and sorted(local) == sorted(on_ray)
