"""A server killed (SIGKILL) while it renders a slate resumes exactly the slate the person saw: its prompts and
seeds were committed before they reached the screen. The app runs as people run it (`python app.py` in its own
process), driven with gradio_client; the log store is read with a read-only SQLite connection meanwhile."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(log_db: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "PASTA_LOG_DB": str(log_db),
        "PASTA_PORT": str(port),
        "PASTA_GENERATOR": "retrieval",
        "PASTA_PREFETCH": "off",
        "PASTA_TIER": "embedded",
        "PASTA_THREADS": "1",
        "PASTA_IMAGES_PER_PROMPT": "16",
    }  # a slow render: a wide window to kill it in
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        assert proc.poll() is None, "the app exited"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("the app did not answer")


def slate_rows(log_db: Path, session_id: str, turn: int) -> list[tuple]:
    with sqlite3.connect(f"file:{log_db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(
            "SELECT c.text, s.seed, s.image_paths IS NULL FROM slates s JOIN candidates c ON "
            "c.session_id = s.session_id AND c.turn_index = s.turn_index AND c.idx = s.candidate_idx "
            "WHERE s.session_id = ? AND s.turn_index = ? ORDER BY s.column",
            (session_id, turn),
        ).fetchall()


@pytest.mark.slow  # two app start-ups and a 16-image render: about 2 minutes; CI runs it
def test_a_server_killed_while_rendering_resumes_the_slate_that_was_shown(tmp_path):
    from gradio_client import Client

    log_db = tmp_path / "logs.sqlite"
    server = launch(log_db, port := free_port())
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        started = client.predict("a black boot", True, api_name="/start")
        details, code = started[-4], started[-1]
        session_id = details["session_id"]
        job = client.submit(2, None, api_name="/pick")  # turn 2 is proposed, logged, then rendered
        deadline, rows = time.time() + 120, []
        while time.time() < deadline and not rows:
            rows = slate_rows(log_db, session_id, 1)
            time.sleep(0.01)
        assert rows and all(missing for *_, missing in rows), "the slate was not logged before its images"
        os.kill(server.pid, signal.SIGKILL)  # mid-render: no image of turn 2 is logged yet
        server.wait(timeout=30)
        with contextlib.suppress(Exception):  # the client's stream broke with the server: that is the point
            job.cancel()
    finally:
        if server.poll() is None:
            server.kill()

    server = launch(log_db, port := free_port())
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        with pytest.raises(Exception, match="resume code is missing or wrong"):
            client.predict(session_id, "", api_name="/resume")
        resumed = client.predict(session_id, code, api_name="/resume")
        details = resumed[-4]
        assert details["turn"] == 2 and details["awaiting_pick"] and resumed[-2] is True  # consent box ticked
        assert [(c["prompt"], c["seed"]) for c in details["slate"]] == [(text, seed) for text, seed, _ in rows]
        assert not any(missing for *_, missing in slate_rows(log_db, session_id, 1))  # rendered again, logged
        assert client.predict(1, None, api_name="/pick")[-4]["turn"] == 3
    finally:
        server.kill()
        server.wait(timeout=30)
