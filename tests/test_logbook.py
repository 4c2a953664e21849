"""The log store on real SQLite files: durability, refusal of foreign files, migrations, export/import, pairwise."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pasta import logbook
from pasta.contracts import CATEGORIES, Candidate
from pasta.logbook import APPLICATION_ID, LogStore, LogStoreError

ROOT = Path(__file__).resolve().parents[1]


def candidates(turn: int, n: int = 25) -> list[Candidate]:
    return [Candidate(f"prompt {turn}.{i}", CATEGORIES[i % len(CATEGORIES)], "test") for i in range(n)]


def play(
    store: LogStore,
    turns: int = 5,
    *,
    user_id: str | None = None,
    source: str = "app",
    seed: int = 7,
    embeddings: bool = True,
    rng: np.random.Generator | None = None,
) -> str:
    """A whole session the way the agent logs it: turn, then choice, then the next turn."""
    rng = rng or np.random.default_rng(seed)
    sid = store.start_session(
        "a red dress", seed, user_id=user_id, source=source, consent=True, settings={"turns": turns}
    )
    for t in range(turns):
        slate = [0, 6, 12, 18]
        store.log_turn(
            sid,
            t,
            "a red dress" if t == 0 else f"prompt {t - 1}.6",
            candidates(t),
            [float(x) for x in rng.normal(size=25)],
            slate,
            [seed * 10 + c for c in range(4)],
            image_embeddings=rng.normal(size=(4, 4, 8)).astype(np.float32) if embeddings else None,
            image_paths=None if embeddings else [[f"img/{t}/{c}/{m}.png" for m in range(4)] for c in range(4)],
        )
        store.log_choice(sid, t, t % 4, rating=(t % 5) + 1 if t % 2 else None, response_seconds=1.5 + t)
    return sid


def plain(value):
    """Episodes with numpy arrays as lists, so they compare with ==."""
    return json.loads(json.dumps(value, default=lambda a: a.tolist()))


def fill(store: LogStore) -> None:
    user = store.add_user("sim-1", "simulated", {"planted_type": 2})
    play(store, user_id=user, source="simulator")
    play(store, turns=2, embeddings=False, seed=8)
    store.record_model_version("qnet", "iql-v1", "models/qnet.pt", metrics={"loss": 0.5}, trained_on={"sessions": 2})
    store.log_refusal("something unsafe", "unsafe content")


def test_new_store_is_wal_with_our_application_id_and_schema(tmp_path):
    path = tmp_path / "nested" / "dir" / "logs.sqlite"
    with LogStore(path) as store:
        assert store.journal_mode == "wal" and store.schema_version == logbook.SCHEMA_VERSION
        assert store.counts() == dict.fromkeys(logbook.TABLES, 0)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(logbook.TABLES) | {"meta"} <= tables
    with LogStore(path) as again:  # reopening an up-to-date store changes nothing
        assert again.schema_version == logbook.SCHEMA_VERSION


def test_five_turn_session_reads_back_as_an_episode(tmp_path):
    store = LogStore(tmp_path / "logs.sqlite")
    user = store.add_user("sim-1", "simulated", {"planted_type": 2})
    rng = np.random.default_rng(0)
    sid = play(store, user_id=user, source="simulator", rng=np.random.default_rng(0))
    episode = store.episode(sid)
    assert episode["id"] == sid and episode["initial_prompt"] == "a red dress" and episode["seed"] == 7
    assert episode["consent"] is True and episode["source"] == "simulator" and episode["settings"] == {"turns": 5}
    assert episode["user"]["kind"] == "simulated" and episode["user"]["attributes"] == {"planted_type": 2}
    assert [t["turn_index"] for t in episode["turns"]] == list(range(5))
    first = episode["turns"][0]
    assert len(first["candidates"]) == 25 and first["candidates"][6]["text"] == "prompt 0.6"
    assert first["candidates"][0]["score"] == pytest.approx(rng.normal(size=25)[0])
    assert [s["candidate_idx"] for s in first["slate"]] == [0, 6, 12, 18]
    assert first["slate"][1]["prompt"] == "prompt 0.6" and first["slate"][1]["category"] == CATEGORIES[1]
    assert [s["seed"] for s in first["slate"]] == [70, 71, 72, 73]
    embeddings = first["slate"][2]["image_embeddings"]
    assert embeddings.dtype == np.float32 and embeddings.shape == (4, 8)
    assert [t["choice"]["column"] for t in episode["turns"]] == [0, 1, 2, 3, 0]
    assert [t["choice"]["rating"] for t in episode["turns"]] == [None, 2, None, 4, None]
    assert episode["turns"][2]["choice"]["response_seconds"] == 3.5
    assert [e["id"] for e in store.episodes(source="simulator")] == [sid]
    assert list(store.episodes(source="app")) == []
    assert store.sessions(user_id=user)[0]["id"] == sid


def test_a_choice_is_on_disk_when_log_choice_returns(tmp_path):
    store = LogStore(tmp_path / "logs.sqlite")
    sid = store.start_session("a cat", 1)
    store.log_turn(sid, 0, "a cat", candidates(0, 5), [0.0] * 5, [0, 1, 2, 3], [1, 2, 3, 4])
    store.log_choice(sid, 0, 2, rating=5)
    other = sqlite3.connect(tmp_path / "logs.sqlite")  # another connection, store still open
    assert other.execute("SELECT column, rating FROM choices WHERE session_id = ?", (sid,)).fetchall() == [(2, 5)]


def test_a_killed_process_loses_nothing_it_logged(tmp_path):
    path = tmp_path / "logs.sqlite"
    script = (
        f"import os; from pasta.logbook import LogStore; s = LogStore({str(path)!r}); "
        "sid = s.start_session('a cat', 1, session_id='killed'); "
        "s.log_turn(sid, 0, 'a cat', [dict(text=f'p{i}', category='style') for i in range(5)], [0.0] * 5, "
        "[0, 1], [1, 2]); s.log_choice(sid, 0, 1); os._exit(0)"
    )  # no close, no checkpoint
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    episode = LogStore(path).episode("killed")
    assert episode["turns"][0]["choice"]["column"] == 1 and len(episode["turns"][0]["slate"]) == 2


@pytest.mark.parametrize(
    ("column", "rating", "message"),
    [
        (4, None, "column=4 is out of range: turn 0 of session 's' showed 4 columns (0 to 3)"),
        (-1, None, "column=-1 is out of range"),
        (True, None, "column=True must be a whole number"),
        (1.0, None, "column=1.0 must be a whole number"),
        (1, 0, "rating=0 is out of range: use a whole number from 1 to 5"),
        (1, 6, "rating=6 is out of range"),
        (1, 2.5, "rating=2.5 must be a whole number"),
    ],
)
def test_a_bad_choice_raises_and_writes_nothing(tmp_path, column, rating, message):
    store = LogStore(tmp_path / "logs.sqlite")
    store.start_session("a cat", 1, session_id="s")
    store.log_turn("s", 0, "a cat", candidates(0), [0.0] * 25, [0, 1, 2, 3], [1, 2, 3, 4])
    before = store.counts()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        store.log_choice("s", 0, column, rating=rating)
    assert store.counts() == before


def test_a_bulk_write_is_one_transaction_whose_calls_each_succeed_or_fail_whole(tmp_path):
    """`bulk()` (simulated sessions): nothing is visible to another connection until it ends; a call that fails
    inside writes nothing and the rest stands; an error leaving the block rolls the whole block back."""
    store = LogStore(tmp_path / "logs.sqlite")
    other = LogStore(tmp_path / "logs.sqlite")
    with store.bulk():
        store.start_session("a cat", 1, session_id="s")
        store.log_turn("s", 0, "a cat", candidates(0), [0.0] * 25, [0, 1, 2, 3], [1, 2, 3, 4])
        with pytest.raises(ValueError, match="rating=9 is out of range"):
            store.log_choice("s", 0, 1, rating=9)
        store.log_choice("s", 0, 2)
        assert other.counts()["sessions"] == 0  # not committed yet
        with pytest.raises(RuntimeError, match="does not nest"):
            with store.bulk():
                pass
    episode = other.episode("s")
    assert [t["choice"]["column"] for t in episode["turns"]] == [2] and episode["turns"][0]["choice"]["rating"] is None
    before = other.counts()
    with pytest.raises(KeyError):
        with store.bulk():
            store.start_session("a dog", 2, session_id="t")
            raise KeyError("stop")
    assert other.counts() == before and store.counts() == before
    store.start_session("a dog", 2, session_id="t")  # after a bulk block, every write commits on its own again
    assert other.counts()["sessions"] == before["sessions"] + 1


def test_choice_rules(tmp_path):
    store = LogStore(tmp_path / "logs.sqlite")
    sid = store.start_session("a cat", 1)
    with pytest.raises(ValueError, match="no slate was logged for turn 0"):
        store.log_choice(sid, 0, 0)
    store.log_turn(sid, 0, "a cat", candidates(0), [0.0] * 25, [0, 1, 2, 3], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="log the choice for turn 0 .* before logging turn 1"):
        store.log_turn(sid, 1, "x", candidates(1), [0.0] * 25, [0, 1, 2, 3], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="has no choice to rate yet"):
        store.rate(sid, 0, 3)
    store.log_choice(sid, 0, 1)
    store.log_choice(sid, 0, 1)  # a retried request is a no-op
    with pytest.raises(ValueError, match=r"already has a choice \(column 1\); a choice is final"):
        store.log_choice(sid, 0, 2)
    store.rate(sid, 0, 4)
    choice = store.episode(sid)["turns"][0]["choice"]
    assert choice["rating"] == 4 and choice["rated"] >= choice["created"]
    with pytest.raises(ValueError, match="turn 0 of session .* is already logged"):
        store.log_turn(sid, 0, "a cat", candidates(0), [0.0] * 25, [0, 1, 2, 3], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="cannot be logged before turn 1"):
        store.log_turn(sid, 3, "x", candidates(1), [0.0] * 25, [0, 1, 2, 3], [1, 2, 3, 4])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scores": [0.0] * 24}, "24 scores for 25 candidates"),
        ({"scores": [float("nan")] * 25}, r"scores\[0\]=nan must be a finite number"),
        ({"slate": [0, 25]}, "slate index=25 is out of range"),
        ({"slate": [1, 1]}, "each at most once"),
        ({"seeds": [1]}, "1 seeds for a slate of 4"),
        ({"image_embeddings": np.zeros((3, 4, 8))}, "image_embeddings has 3 entries for a slate of 4"),
        ({"candidates": [{"text": "no category"}] * 25}, "needs text and category"),
        ({"session_id": "nope"}, "unknown session 'nope'"),
    ],
)
def test_a_bad_turn_raises_and_writes_nothing(tmp_path, change, message):
    store = LogStore(tmp_path / "logs.sqlite")
    store.start_session("a cat", 1, session_id="s")
    args = {
        "session_id": "s",
        "turn_index": 0,
        "prompt": "a cat",
        "candidates": candidates(0),
        "scores": [0.0] * 25,
        "slate": [0, 1, 2, 3],
        "seeds": [1, 2, 3, 4],
    } | change
    with pytest.raises(ValueError, match=message):
        store.log_turn(**args)
    assert store.counts()["turns"] == store.counts()["candidates"] == 0


def test_unknown_user_and_duplicate_session_are_refused(tmp_path):
    store = LogStore(tmp_path / "logs.sqlite")
    with pytest.raises(ValueError, match="unknown user 'ghost': add it with add_user"):
        store.start_session("a cat", 1, user_id="ghost")
    store.start_session("a cat", 1, session_id="s")
    with pytest.raises(ValueError, match="session 's' is already logged"):
        store.start_session("a cat", 1, session_id="s")
    with pytest.raises(ValueError, match="kind='robot'"):
        store.add_user(kind="robot")


def test_eight_threads_share_one_store_without_errors_or_lost_rows(tmp_path):
    store = LogStore(tmp_path / "logs.sqlite")
    errors: list[BaseException] = []

    def client(k: int) -> None:
        try:
            for j in range(3):
                play(store, turns=2, seed=100 * k + j, embeddings=bool(j % 2))
                store.counts()  # readers alongside the writers
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counts = store.counts()
    assert counts["sessions"] == 24 and counts["turns"] == 48 and counts["choices"] == 48
    assert counts["candidates"] == 48 * 25 and counts["slates"] == 48 * 4
    assert sorted(e["seed"] for e in store.episodes()) == sorted(100 * k + j for k in range(8) for j in range(3))


def test_two_stores_on_one_file_see_each_others_rows(tmp_path):
    """The app and a CLI export (or a second app process) may open the same file at once."""
    first, second = LogStore(tmp_path / "logs.sqlite"), LogStore(tmp_path / "logs.sqlite")
    a = play(first, turns=1)
    b = play(second, turns=1, seed=9)
    assert {e["id"] for e in first.episodes()} == {e["id"] for e in second.episodes()} == {a, b}


def _unchanged_after_refusal(path: Path, match: str) -> None:
    before, files = path.read_bytes(), sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(LogStoreError, match=match) as caught:
        LogStore(path)
    assert str(path) in str(caught.value) and "left untouched" in str(caught.value)
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == files


def test_another_programs_sqlite_database_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices VALUES (1, 9.5)")
    conn.commit()
    conn.close()
    _unchanged_after_refusal(path, r"another program, not a PASTA log store \(application_id 0x0, tables: invoices")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.commit()
    conn.close()
    _unchanged_after_refusal(path, "application_id 0x4d2")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    conn.close()
    _unchanged_after_refusal(path, "another program")  # no -wal or -shm files left beside it either


@pytest.mark.parametrize(
    "content",
    [
        np.random.default_rng(0).bytes(8192),
        logbook.SQLITE_MAGIC + np.random.default_rng(1).bytes(8192),
        b"name,prompt\nada,a cat\n",
    ],
)
def test_a_corrupt_or_non_sqlite_file_is_refused_and_left_untouched(tmp_path, content):
    path = tmp_path / "logs.sqlite"
    path.write_bytes(content)
    _unchanged_after_refusal(path, "not a SQLite database|cannot be read as a SQLite database")


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "logs.sqlite"
    LogStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    _unchanged_after_refusal(path, f"has log store schema 99, newer than this pasta knows \\({logbook.SCHEMA_VERSION}")


def test_paths_that_are_not_log_stores(tmp_path):
    with pytest.raises(LogStoreError, match="is not a file"):
        LogStore(tmp_path)
    with pytest.raises(LogStoreError, match="there is no log store at"):
        LogStore(tmp_path / "missing.sqlite", create=False)
    assert not (tmp_path / "missing.sqlite").exists()


def test_an_older_schema_is_migrated_in_place_keeping_its_data(tmp_path, monkeypatch):
    path = tmp_path / "logs.sqlite"
    with LogStore(path) as store:
        sid = play(store, turns=2)

    def add_notes(conn):
        conn.execute("ALTER TABLE sessions ADD COLUMN notes TEXT NOT NULL DEFAULT ''")

    def broken(conn):
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("disk on fire")

    n = logbook.SCHEMA_VERSION
    monkeypatch.setattr(logbook.schema, "MIGRATIONS", [*logbook.MIGRATIONS, broken])
    with pytest.raises(
        LogStoreError, match=f"from schema {n} to {n + 1} failed \\(disk on fire\\); the file was left at"
    ):
        LogStore(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == n
    assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'half_done'").fetchall()
    conn.close()

    monkeypatch.setattr(logbook.schema, "MIGRATIONS", [*logbook.MIGRATIONS[:n], add_notes])
    with LogStore(path) as store:
        assert store.schema_version == n + 1
        assert store.episode(sid)["notes"] == "" and len(store.episode(sid)["turns"]) == 2


def test_parquet_export_and_import_round_trip_and_import_is_idempotent(tmp_path):
    source = LogStore(tmp_path / "a.sqlite")
    fill(source)
    _write_pick_a_pic(tmp_path / "pairs.parquet")
    source.import_pairwise_parquet(tmp_path / "pairs.parquet")
    written = source.export_parquet(tmp_path / "export")
    assert written == source.counts()
    assert pq.read_table(tmp_path / "export" / "slates.parquet").schema.field("image_embeddings").type == pa.list_(
        pa.list_(pa.float32())
    )

    target = LogStore(tmp_path / "b.sqlite")
    target.log_refusal("already here", "unsafe")  # a different store with its own rows (and ids)
    assert target.import_parquet(tmp_path / "export") == written
    assert target.import_parquet(tmp_path / "export") == dict.fromkeys(written, 0)
    assert plain(list(target.episodes())) == plain(list(source.episodes()))
    assert target.model_versions() == source.model_versions()
    assert plain([{k: v for k, v in r.items() if k != "id"} for r in target.pairwise_rows()]) == plain(
        [{k: v for k, v in r.items() if k != "id"} for r in source.pairwise_rows()]
    )
    assert target.counts()["refusals"] == 2


def test_jsonl_export_and_import_round_trip_and_import_is_idempotent(tmp_path):
    source = LogStore(tmp_path / "a.sqlite")
    fill(source)
    assert source.export_jsonl(tmp_path / "episodes.jsonl") == 2
    lines = (tmp_path / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["turns"][0]["slate"][0]["prompt"] == "prompt 0.0"
    target = LogStore(tmp_path / "b.sqlite")
    assert target.import_jsonl(tmp_path / "episodes.jsonl") == 2
    assert target.import_jsonl(tmp_path / "episodes.jsonl") == 0
    assert plain(list(target.episodes())) == plain(list(source.episodes()))
    assert (
        target.episode(lines and json.loads(lines[0])["id"])["turns"][0]["slate"][0]["image_embeddings"].dtype
        == np.float32
    )


def test_a_bad_jsonl_line_imports_nothing(tmp_path):
    source = LogStore(tmp_path / "a.sqlite")
    play(source, turns=1)
    source.export_jsonl(tmp_path / "episodes.jsonl")
    with (tmp_path / "episodes.jsonl").open("a") as f:
        f.write('{"id": "half an episode"}\n')
    target = LogStore(tmp_path / "b.sqlite")
    with pytest.raises(ValueError, match="episodes.jsonl, line 2: not a PASTA episode"):
        target.import_jsonl(tmp_path / "episodes.jsonl")
    assert target.counts()["sessions"] == 0


def _jpeg(k: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes([k]) * 16


def _write_pick_a_pic(path: Path, **drop: bool) -> None:
    """Pick-a-Pic v2's columns (caption, image_0_uid, jpg_0, label_0, label_1, user_id, ...), 6 rows."""
    table = {
        "caption": ["a cat", "a cat", "a dog", "a red dress", "a boat", "a boat"],
        "image_0_uid": [f"u{i}a" for i in range(6)],
        "image_1_uid": [f"u{i}b" for i in range(6)],
        "jpg_0": [_jpeg(i) for i in range(6)],
        "jpg_1": [_jpeg(10 + i) for i in range(6)],
        "label_0": [1.0, 0.0, 0.5, 1.0, 0.0, 0.0],  # row 4 is unlabelled (0, 0): skipped
        "label_1": [0.0, 1.0, 0.5, 0.0, 0.0, 1.0],
        "user_id": [11, 11, 12, 13, 14, 14],
        "model_0": ["sdxl"] * 6,
    }
    pq.write_table(pa.table({k: v for k, v in table.items() if not drop.get(k)}), path, row_group_size=4)


def test_pairwise_import_of_pick_a_pic_style_rows_in_batches(tmp_path):
    _write_pick_a_pic(tmp_path / "pairs.parquet")
    store = LogStore(tmp_path / "logs.sqlite")
    assert store.import_pairwise_parquet(tmp_path / "pairs.parquet", batch_size=2) == 5
    assert store.import_pairwise_parquet(tmp_path / "pairs.parquet", batch_size=2) == 0
    rows = list(store.pairwise_rows())
    assert [r["label"] for r in rows] == [1.0, 0.0, 0.5, 1.0, 0.0]
    assert rows[0]["prompt"] == "a cat" and (rows[0]["image_a"], rows[0]["image_b"]) == ("u0a", "u0b")
    assert rows[0]["user_id"] == "11" and rows[0]["source"] == "pairs" and rows[0]["embedding_a"] is None

    images = tmp_path / "images"
    assert store.import_pairwise_parquet(tmp_path / "pairs.parquet", image_dir=images, source="pap-bytes") == 5
    saved = [r for r in store.pairwise_rows("pap-bytes")]
    assert Path(saved[0]["image_a"]).read_bytes() == _jpeg(0) and saved[0]["image_a"].endswith(".jpg")
    assert len(list(images.iterdir())) == 10


def test_pairwise_import_with_a_single_label_embeddings_and_a_mapping(tmp_path):
    path = tmp_path / "prefs.parquet"
    pq.write_table(
        pa.table(
            {
                "title": ["a cat", "a dog"],
                "image_a": ["a.png", "c.png"],
                "image_b": ["b.png", "d.png"],
                "label": [0.25, 1.0],
                "embedding_0": [[1.0, 0.0], [0.0, 1.0]],
                "embedding_1": [[0.5, 0.5], None],
            }
        ),
        path,
    )
    store = LogStore(tmp_path / "logs.sqlite")
    assert store.import_pairwise_parquet(path, mapping={"prompt": "title"}) == 2
    rows = list(store.pairwise_rows())
    assert rows[0]["label"] == 0.25 and rows[0]["user_id"] is None
    assert rows[0]["embedding_a"].tolist() == [1.0, 0.0] and rows[1]["embedding_b"] is None


def test_pairwise_import_names_what_is_missing(tmp_path):
    _write_pick_a_pic(tmp_path / "no_caption.parquet", caption=True)
    store = LogStore(tmp_path / "logs.sqlite")
    with pytest.raises(
        ValueError,
        match=r"lacks the column\(s\) for prompt \(looked for prompt: prompt \| caption "
        r"\| text\); its columns are: image_0_uid, image_1_uid, jpg_0",
    ):
        store.import_pairwise_parquet(tmp_path / "no_caption.parquet")
    with pytest.raises(ValueError, match="has no column\\(s\\) title named in mapping"):
        store.import_pairwise_parquet(tmp_path / "no_caption.parquet", mapping={"prompt": "title"})
    _write_pick_a_pic(tmp_path / "bytes_only.parquet", image_0_uid=True, image_1_uid=True)
    with pytest.raises(ValueError, match="column jpg_0 \\(image_a\\) holds image bytes: pass image_dir"):
        store.import_pairwise_parquet(tmp_path / "bytes_only.parquet")
    pq.write_table(
        pa.table({"prompt": ["x"], "image_a": ["a"], "image_b": ["b"], "label": [2.0]}), tmp_path / "bad_label.parquet"
    )
    with pytest.raises(ValueError, match="bad_label.parquet, row 0: label 2.0 is outside 0..1"):
        store.import_pairwise_parquet(tmp_path / "bad_label.parquet")
    assert store.counts()["pairwise"] == 0


def test_model_versions_and_refusals(tmp_path):
    store = LogStore(tmp_path / "logs.sqlite")
    assert store.latest_model_version("qnet") is None
    store.record_model_version("qnet", "iql-1", "runs/q1.pt", metrics={"td": 0.3})
    second = store.record_model_version("qnet", "iql-2", "runs/q2.pt", trained_on={"sessions": ["s1"]})
    store.record_model_version("user_model", "em-k4", "runs/um.npz")
    latest = store.latest_model_version("qnet")
    assert latest["id"] == second and latest["trained_on"] == {"sessions": ["s1"]} and latest["metrics"] == {}
    assert [v["name"] for v in store.model_versions()] == ["iql-1", "iql-2", "em-k4"]
    store.log_refusal("bad words", "unsafe: violence")
    assert store.counts()["refusals"] == 1


def test_cli_helpers_export_and_import(tmp_path):
    with LogStore(tmp_path / "a.sqlite") as store:
        fill(store)
    assert logbook.export(tmp_path / "a.sqlite", tmp_path / "out", "parquet")["sessions"] == 2
    assert logbook.export(tmp_path / "a.sqlite", tmp_path / "e.jsonl", "jsonl") == {"episodes": 2}
    assert logbook.import_(tmp_path / "b.sqlite", tmp_path / "out")["sessions"] == 2
    assert logbook.import_(tmp_path / "c.sqlite", tmp_path / "e.jsonl") == {"episodes": 2}
    _write_pick_a_pic(tmp_path / "pairs.parquet")
    assert logbook.import_(tmp_path / "c.sqlite", tmp_path / "pairs.parquet") == {"pairwise": 5}
    with pytest.raises(LogStoreError, match="there is no log store at"):
        logbook.export(tmp_path / "missing.sqlite", tmp_path / "out2", "parquet")
    with pytest.raises(ValueError, match="fmt='csv' is not an export format"):
        logbook.export(tmp_path / "a.sqlite", tmp_path / "out3", "csv")
    with pytest.raises(ValueError, match="does not exist"):
        logbook.import_(tmp_path / "d.sqlite", tmp_path / "nothing.jsonl")
    assert not (tmp_path / "missing.sqlite").exists() and not (tmp_path / "d.sqlite").exists()


def test_pasta_logs_command_exports_imports_and_refuses_bad_input(tmp_path, capsys):
    from pasta.cli import main as pasta

    with LogStore(tmp_path / "a.sqlite") as store:
        fill(store)
    assert pasta(["logs", "export", str(tmp_path / "a.sqlite"), str(tmp_path / "e.jsonl")]) == 0
    assert "2 episodes exported from" in capsys.readouterr().out
    assert pasta(["logs", "export", str(tmp_path / "a.sqlite"), str(tmp_path / "out")]) == 0
    assert pasta(["logs", "import", str(tmp_path / "b.sqlite"), str(tmp_path / "out")]) == 0
    assert "2 sessions" in capsys.readouterr().out
    _write_pick_a_pic(tmp_path / "pairs.parquet")
    assert (
        pasta(["logs", "import", str(tmp_path / "b.sqlite"), str(tmp_path / "pairs.parquet"), "--source", "pap"]) == 0
    )
    assert "5 pairwise imported into" in capsys.readouterr().out
    with LogStore(tmp_path / "b.sqlite", create=False) as store:
        assert store.counts()["sessions"] == 2 and {r["source"] for r in store.pairwise_rows()} == {"pap"}

    (tmp_path / "foreign.sqlite").write_bytes(b"not a database at all" * 10)
    assert pasta(["logs", "import", str(tmp_path / "foreign.sqlite"), str(tmp_path / "e.jsonl")]) == 2
    assert "is not a SQLite database" in capsys.readouterr().err
    assert (tmp_path / "foreign.sqlite").read_bytes() == b"not a database at all" * 10
    assert pasta(["logs", "export", str(tmp_path / "missing.sqlite"), str(tmp_path / "x")]) == 2
    assert "there is no log store" in capsys.readouterr().err


def test_resume_tokens_are_kept_as_digests_checked_in_constant_time_and_never_exported(tmp_path, monkeypatch):
    token = "s3cret-token-of-forty-three-characters-xyz"
    with LogStore(tmp_path / "logs.sqlite") as store:
        sid = store.start_session("a red dress", 1, consent=True, resume_token=token)
        assert store.resume_token_matches(sid, token) is True
        assert store.resume_token_matches(sid, token + "x") is False and store.resume_token_matches(sid, None) is False
        with pytest.raises(ValueError, match="already has a resume token"):
            store.set_resume_token(sid, "another")  # nobody re-keys a session
        with pytest.raises(KeyError):
            store.resume_token_matches("f" * 32, token)
        store.export_parquet(tmp_path / "export")
        store.export_jsonl(tmp_path / "episodes.jsonl")
    raw = (tmp_path / "logs.sqlite").read_bytes()
    assert token.encode() not in raw
    for file in [*(tmp_path / "export").iterdir(), tmp_path / "episodes.jsonl"]:
        assert b"resume" not in file.read_bytes() and token.encode() not in file.read_bytes()


def test_a_session_logged_before_resume_tokens_gets_one_once(tmp_path, monkeypatch):
    path = tmp_path / "logs.sqlite"
    monkeypatch.setattr(logbook.schema, "MIGRATIONS", logbook.MIGRATIONS[:1])  # a store written before schema 2
    with LogStore(path) as store:
        sid = play(store, turns=1)
    monkeypatch.undo()
    with LogStore(path) as store:
        assert store.schema_version == logbook.SCHEMA_VERSION
        assert store.resume_token_matches(sid, "anything") is None  # no token yet
        store.set_resume_token(sid, "the-first-token")
        assert store.resume_token_matches(sid, "the-first-token") is True
        assert len(store.episode(sid)["turns"]) == 1
