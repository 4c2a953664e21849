"""The `pasta` command as a person runs it: a real subprocess."""

import json
import os
import re
import subprocess
import sys

import pytest


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "pasta.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PASTA_TEST_THREADS": "1", **(env or {})},
    )


def test_help_lists_subcommands():
    out = run("--help")
    assert out.returncode == 0
    for command in ("app", "propose", "bench", "eval"):
        assert command in out.stdout


def test_propose_prints_25_candidates_with_categories_and_time():
    out = run("propose", "a cat", "--generator", "retrieval")
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if re.match(r"^\s*\d+  \w+\s+\S", line)]
    assert len(rows) == 25
    assert {row.split()[1] for row in rows} == {"rephrase", "detail", "style", "subject", "creative"}
    assert "25 candidates from retrieval in" in out.stdout


def test_propose_json():
    out = run("propose", "a red dress", "--generator", "retrieval", "--json", "--n", "10")
    data = json.loads(out.stdout)
    assert len(data["candidates"]) == 10 and data["seconds"] > 0


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"PASTA_TIER": "gpu"}, [], "tier='gpu' is not allowed: choose one of auto, embedded, hub"),
        ({}, ["--generator", "gpt4"], "generator='gpt4' is not allowed: choose one of lmm, retrieval"),
    ],
)
def test_invalid_settings_fail_at_start_up(env, args, message):
    out = run("propose", "a cat", *args, env=env)
    assert out.returncode == 2
    assert message in out.stderr
