"""The app's parts outside the UI: which slate policy runs, the app factory, the session export, ZeroGPU and
Spaces packaging."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pasta.config import Settings
from pasta.policy.loader import load_policy

ROOT = Path(__file__).resolve().parents[1]


# -- the slate policy ----------------------------------------------------------------------------------------------


def test_a_trained_agent_is_used_when_it_is_there(tiny_agent_dir, embedded_embedder):
    loaded = load_policy(Settings.from_env({}, agent_dir=str(tiny_agent_dir)), embedded_embedder)
    assert loaded.policy.name == "iql+adapt+explore" and "trained PASTA agent" in loaded.notice
    assert re.fullmatch(r"[0-9a-f]{16}", loaded.version)


def test_the_session_estimate_is_on_by_default_and_can_be_turned_off(tiny_agent_dir, embedded_embedder):
    from pasta.config import settings_arguments, settings_from_args

    off = settings_from_args(settings_arguments().parse_args(["--session-estimate", "off"]))
    assert Settings.from_env({}).session_estimate and not off.session_estimate
    off = settings_from_args(
        settings_arguments().parse_args(["--session-estimate", "off", "--agent-dir", str(tiny_agent_dir)])
    )
    loaded = load_policy(off, embedded_embedder)
    assert loaded.policy.name == "iql" and "own estimate" not in loaded.notice


@pytest.mark.parametrize("broken", ["missing qnet", "missing user model", "types disagree", "corrupt weights"])
def test_otherwise_the_baseline_runs_and_says_why(tiny_agent_dir, embedded_embedder, tmp_path, broken):
    folder = tmp_path / "agent"
    shutil.copytree(tiny_agent_dir, folder)
    if broken == "missing qnet":
        shutil.rmtree(folder / "qnet")
    elif broken == "missing user model":
        shutil.rmtree(folder / "user_model")
    elif broken == "types disagree":
        meta = json.loads((folder / "qnet" / "config.json").read_text())
        meta["qnet"]["n_types"] = 5
        (folder / "qnet" / "config.json").write_text(json.dumps(meta))
    else:
        (folder / "qnet" / "model.safetensors").write_bytes(b"not safetensors")
    loaded = load_policy(Settings.from_env({}, agent_dir=str(folder)), embedded_embedder)
    assert loaded.policy.name == "lmm-order" and loaded.version == ""
    assert loaded.notice.startswith("Slate policy: LMM order (baseline), because the trained agent could not be used")


def test_an_agent_for_another_embedding_size_is_not_used(tiny_agent_dir):
    class WideEmbedder:
        dim = 512

    loaded = load_policy(Settings.from_env({}, agent_dir=str(tiny_agent_dir)), WideEmbedder())
    assert loaded.policy.name == "lmm-order" and "384-d embeddings but the embedder makes 512-d" in loaded.notice


# -- the app factory -----------------------------------------------------------------------------------------------


def test_the_app_factory_builds_a_logged_agent(tiny_agent_dir, tmp_path, embedded_t2i):
    from pasta.app.factory import build_app_parts

    settings = Settings.from_env(
        {}, tier="embedded", generator="retrieval", agent_dir=str(tiny_agent_dir), log_db=str(tmp_path / "logs.sqlite")
    )
    parts = build_app_parts(settings)
    agent = parts.agent
    assert agent.policy.name == "iql+adapt+explore" and agent.embedder is not None and agent.recorder is not None
    assert parts.notices[0].startswith("Slate policy: the trained PASTA agent")
    assert agent.recorder.image_dir == (tmp_path / "images").absolute()
    assert agent.render_ahead and not build_app_parts(replace(settings, render_ahead=False)).agent.render_ahead
    versions = agent.recorder.store.model_versions("agent")
    assert len(versions) == 1 and versions[0]["id"] == agent.recorder.agent_version
    assert build_app_parts(settings).agent.recorder.store.model_versions("agent") == versions  # recorded once


def test_a_log_store_that_is_not_ours_stops_the_app_with_a_clear_message(tmp_path):
    from pasta.cli import main

    bad = tmp_path / "notes.sqlite"
    bad.write_text("shopping list")
    assert main(["app", "--log-db", str(bad), "--generator", "retrieval", "--tier", "embedded"]) == 2
    assert bad.read_text() == "shopping list"


@pytest.mark.parametrize(
    "setting, value, message",
    [
        ("PASTA_LOG_DB", "{tmp}/notes.sqlite", "is not a SQLite database"),
        ("PASTA_LOG_DB", "{tmp}/a-file/logs.sqlite", "cannot open the log store"),
        ("PASTA_T2I_MODEL_DIR", "{tmp}/nothing", "no embedded text-to-image weights"),
    ],
)
def test_start_up_errors_are_one_line_and_a_non_zero_exit(tmp_path, setting, value, message):
    (tmp_path / "notes.sqlite").write_text("shopping list")
    (tmp_path / "a-file").write_text("not a folder")
    env = {
        **os.environ,
        "PASTA_GENERATOR": "retrieval",
        "PASTA_TIER": "embedded",
        "PASTA_PREFETCH": "off",
        "PASTA_LOG_DB": str(tmp_path / "logs.sqlite"),
        setting: value.format(tmp=tmp_path),
    }
    env.pop("PASTA_DEBUG", None)
    done = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pasta: error: ") and message in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert (tmp_path / "notes.sqlite").read_text() == "shopping list"
    if setting != "PASTA_LOG_DB" or "a-file" not in value:
        return
    debug = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={**env, "PASTA_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert debug.returncode == 2 and "Traceback" in debug.stderr


# -- export --------------------------------------------------------------------------------------------------------


def test_a_session_exports_as_images_and_json(embedded_t2i, retrieval, tmp_path):
    from pasta.agent import Agent
    from pasta.app.export import export_session

    agent = Agent(
        Settings.from_env({}, turns=2, generator="retrieval", images_per_prompt=2), None, embedded_t2i, retrieval
    )
    session = agent.start("a pink skirt", seed=4)
    agent.pick(session, 3, rating=4)
    agent.toggle_favourite(session, 0, 1)
    with zipfile.ZipFile(export_session(session, tmp_path)) as z:
        data = json.loads(z.read("session.json"))
        names = set(z.namelist())
    assert data["session_id"] == session.id and data["history"] == session.history()
    first = data["turns"][0]
    assert first["picked_column"] == 4 and first["rating"] == 4 and len(first["candidates"]) == 25
    assert [c["seed"] for c in first["columns"]] == session.turns[0].seeds
    assert {image for t in data["turns"] for c in t["columns"] for image in c["images"]} <= names
    assert {"favourites/turn1_column2_1.png", "favourites/turn1_column2_2.png"} <= names
    assert sum(n.startswith("turn") for n in names) == 2 * 4 * 2


# -- Spaces --------------------------------------------------------------------------------------------------------


def test_zerogpu_decorator_is_a_no_op_without_the_spaces_package():
    from pasta.app.zerogpu import on_gpu, spaces_available

    def render():
        return "rendered"

    if spaces_available():
        pytest.skip("the spaces package is installed here")
    assert on_gpu(render) is render


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_requirements_txt_installs_what_the_app_imports():
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line]
    assert all(not line.startswith(("-e", ".", "/", "git+")) for line in requirements)  # Spaces installs from PyPI
    names = {_name(r) for r in requirements}
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {_name(r) for r in project} <= names
    assert "clip-interrogator" in names  # the phrase lists of the retrieval generator
    from packaging.requirements import Requirement

    for requirement in requirements:
        Requirement(requirement)  # valid PEP 508


def test_bench_app_is_a_pasta_command():
    out = subprocess.run(
        [sys.executable, "-m", "pasta.cli", "bench", "app", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "--clients" in out.stdout and "--sessions" in out.stdout


def test_bench_app_gives_the_server_every_model_setting_it_was_given(tmp_path):
    from pasta.config import settings_arguments
    from pasta.tools.bench_app import server_command

    args = settings_arguments().parse_args(["--sampling-steps", "7", "--guidance", "cfg", "--world", "fashion"])
    args.threads = 1
    command = " ".join(server_command(args, tmp_path / "logs.sqlite", 7861))
    assert "--sampling-steps 7" in command and "--guidance cfg" in command and "--world fashion" in command
    assert "--port 7861" in command and "--adapter" not in command  # settings not given stay the server's own


def test_bench_app_percentiles_lie_between_median_and_max_for_few_samples():
    from pasta.tools.bench_app import summarize

    two = summarize([7.57, 5.02])  # two sessions: p90 was the smaller of the two, under the median
    assert two["median_s"] == pytest.approx(6.295) and two["p90_s"] == pytest.approx(7.315)
    six = summarize([1.12, 6.72, 2.5, 2.76, 4.09, 0.9])
    assert six["median_s"] <= six["p90_s"] <= six["max_s"] == 6.72 and six["min_s"] == 0.9
    assert summarize([]) == {"n": 0}


@pytest.mark.slow
def test_bench_app_runs_a_real_server_and_finds_every_log_row(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pasta.cli",
            "bench",
            "app",
            "--generator",
            "retrieval",
            "--tier",
            "embedded",
            "--sessions",
            "1",
            "--clients",
            "2",
            "--turns",
            "2",
            "--threads",
            "1",
            "--think-time",
            "0",
            "2",
            "--out",
            str(tmp_path / "app.json"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads((tmp_path / "app.json").read_text())
    assert result["load"]["completed_sessions"] == 2 and not result["load"]["errors"]
    assert not result["load"]["log_problems"]
    assert [row["think_time_s"] for row in result["latency"]] == [0, 2]
    for row in result["latency"]:
        assert row["pick_to_first_images"]["median_s"] <= row["pick_to_complete_slate"]["median_s"]
        assert np.isfinite(row["pick_to_complete_slate"]["median_s"])
    assert result["latency"][1]["picks_with_candidates_proposed_ahead"] == 1  # 2 s is time enough for retrieval


def test_small_images_are_shown_enlarged_smoothly_and_large_ones_as_they_are():
    from PIL import Image

    from pasta.app.views import DISPLAY_SIDE, for_display

    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    shown = for_display(small)
    assert shown.size == (DISPLAY_SIDE, DISPLAY_SIDE)
    pixels = np.asarray(shown).astype(int)
    # Nearest-neighbour enlarging repeats each pixel in 8x8 blocks; a smooth filter changes within a block.
    assert (np.abs(np.diff(pixels[:8, :8], axis=1)) > 0).mean() > 0.5
    large = Image.new("RGB", (512, 384))
    assert for_display(large) is large


def test_why_this_slate_says_how_the_agent_chose_and_that_the_last_turn_keeps_the_prompt():
    from pasta.app import views
    from pasta.contracts import CATEGORIES, Candidate
    from pasta.session import Session, Turn

    candidates = [Candidate(f"a red dress {i}", CATEGORIES[i % 5]) for i in range(10)]
    session = Session("a red dress", seed=1, max_turns=2)
    for index, slate in ((0, [1, 2, 3, 4]), (1, [0, 1, 2, 3])):  # the second turn shows the rephrase (0)
        session.turns.append(
            Turn(index, "a red dress", candidates, slate, [float(-i) for i in range(10)], [], [], policy="iql+adapt")
        )
        text, table = views.explanation(session)
        assert "Q-network" in text and "your own picks" in text and len(table) == 10
        assert ("keeps your current prompt" in text) == (index == 1)
        assert table["candidate"][0] == "a red dress 0" and table["shown in column"][slate[0]] == 1  # best first
    session.max_turns = 3  # continued: that turn is no longer the last
    assert "keeps your current prompt" not in views.explanation(session)[0]
