"""`pasta bench app`: the app as people meet it, a real server in its own process driven by gradio_client.

Two phases against one server (`pasta app` in a subprocess, its own log store in a temporary folder):

1. latency: one client at a time runs whole sessions; for every pick that leads to a new slate it times the first
   streamed images (the first column) and the complete next slate (L_C candidates proposed, safety-filtered,
   Q-scored, L x M images rendered, embedded and logged), as the client receives them. Once per `--think-time`:
   0 s (a pick the moment the slate is complete: nothing could be proposed ahead) and 10 s (a person looking at
   16 images first; `--prefetch` proposes each column's next candidates meanwhile and `--render-ahead` renders
   their next slates, the likeliest first; the table counts the picks whose slate was ready, and times them
   apart from those that found nothing rendered: the picks are random columns, a person the user model cannot
   predict, so these are the hits of the least predictable person). The client does not download
   the images (a browser fetches them on its own machine; here the client would share the server's 2 cores);
   `--download-images` makes it;
2. load: N clients at once each run a whole session (start + H picks, random columns); every error counts, and
   afterwards the log store must hold every turn and every pick of every session ("no lost log row").

With `--browser`, each latency phase is run a second time in headless Chromium (`pasta.tools.bench_browser`): the page
as a person sees it, images fetched and decoded, beside the gradio_client figures in the same table.

Prints a table and writes JSON (bench-results/app.json). Targets (issue 6, embedded tier, 2 CPU cores): median
pick -> complete next slate <= 4 s, first images sooner; 8 concurrent clients with no error and no lost row.
Timings on a machine shared with other work are noisy: the JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from pasta.config import SETTING_FLAGS
from pasta.paths import DATA_DIR
from pasta.tools.bench_propose import read_prompts

TARGET_PICK_TO_SLATE_S = 4.0
SLATE = 4
DETAILS = 1 + 2 * SLATE + 5
"""Index of the session details (JSON) in a turn endpoint's outputs (`pasta.app.layout.Page.view` without the
session state): status, the captions, the galleries, history gallery and table, type posterior, taste text,
favourites, details."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(args, log_db: Path, port: int) -> list[str]:
    """`pasta app` on 127.0.0.1:port with every model setting the benchmark was given."""
    command = [
        sys.executable,
        "-m",
        "pasta.cli",
        "app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-db",
        str(log_db),
        "--threads",
        str(args.threads),
    ]
    for flag in SETTING_FLAGS:  # every model setting given to the benchmark reaches the server
        if flag not in ("log_db", "threads", "host", "port") and getattr(args, flag, None) is not None:
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return command


def start_server(args, log_db: Path, port: int) -> subprocess.Popen:
    """`pasta app` in a subprocess on 127.0.0.1:port; returns once it answers HTTP."""
    command = server_command(args, log_db, port)
    env = {
        **os.environ,
        "PASTA_TURNS": str(args.turns),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
    }
    log = open(log_db.with_name("server.log"), "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + args.startup_timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return proc
        except OSError:
            time.sleep(1)
    proc.terminate()
    raise RuntimeError(f"the app did not answer within {args.startup_timeout} s; see {log.name}")


def timed(client, *inputs, api_name: str) -> dict:
    """Run one turn endpoint, streaming: seconds to the first rendered column and to the complete slate."""
    t0 = time.perf_counter()
    job = client.submit(*inputs, api_name=api_name)
    first = None
    for out in job:
        details = out[DETAILS] if isinstance(out, (list, tuple)) and len(out) > DETAILS else None
        if first is None and isinstance(details, dict) and details.get("columns_ready", 0) >= 1:
            first = time.perf_counter() - t0
    final = job.result()
    total = time.perf_counter() - t0
    return {"first_images_s": first if first is not None else total, "complete_s": total, "details": final[DETAILS]}


def run_session(
    url: str, prompt: str, turns: int, rng: np.random.Generator, think_time: float = 0.0, download: bool = False
) -> dict:
    """One simulated person: start, then `turns` picks of random columns, each `think_time` seconds after the
    slate is complete (the time a person spends looking at 16 images)."""
    from gradio_client import Client

    client = Client(url, verbose=False, **({} if download else {"download_files": False}))
    start = timed(client, prompt, True, api_name="/start")
    session_id = start["details"]["session_id"]
    picks, columns = [], []
    for turn in range(turns):
        column = int(rng.integers(1, SLATE + 1))
        columns.append(column - 1)
        time.sleep(think_time)
        result = timed(client, column, None, api_name="/pick")
        if turn < turns - 1:  # the last pick ends the session: no slate follows
            picks.append(result)
    return {"session_id": session_id, "prompt": prompt, "start": start, "picks": picks, "columns": columns}


def check_logs(log_db: Path, sessions: list[dict], turns: int, n_candidates: int) -> list[str]:
    """Every turn and pick of every session in the log store: the problems found (empty when none)."""
    from pasta.logbook import LogStore

    problems = []
    with LogStore(log_db, create=False) as store:
        for s in sessions:
            try:
                episode = store.episode(s["session_id"])
            except KeyError:
                problems.append(f"{s['session_id']}: session missing")
                continue
            logged = episode["turns"]
            if len(logged) != turns:
                problems.append(f"{s['session_id']}: {len(logged)} turns logged, {turns} shown")
            for t, (turn, column) in enumerate(zip(logged, s["columns"])):
                if (turn["choice"] or {}).get("column") != column:
                    problems.append(f"{s['session_id']} turn {t + 1}: pick {column} not logged ({turn['choice']})")
                if len(turn["slate"]) != SLATE or any(c["image_embeddings"] is None for c in turn["slate"]):
                    problems.append(f"{s['session_id']} turn {t + 1}: slate rows or image embeddings missing")
                if len(turn["candidates"]) > n_candidates or len(turn["candidates"]) < SLATE:
                    problems.append(f"{s['session_id']} turn {t + 1}: {len(turn['candidates'])} candidates")
    return problems


def summarize(values: list[float]) -> dict:
    """n, median, 90th percentile (linear between the nearest values, as numpy's), min and max of some seconds."""
    values = sorted(values)
    return (
        {
            "n": len(values),
            "median_s": statistics.median(values),
            "p90_s": float(np.percentile(values, 90)),
            "min_s": values[0],
            "max_s": values[-1],
        }
        if values
        else {"n": 0}
    )


def main(argv: list[str]) -> int:
    from pasta.config import settings_arguments, settings_from_args

    p = argparse.ArgumentParser(
        prog="pasta bench app", parents=[settings_arguments()], description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--sessions", type=int, default=3, help="sequential sessions timed per think time")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients in the load phase (0 skips it)")
    p.add_argument("--turns", type=int, default=5, help="H, turns per session")
    p.add_argument("--prompts", type=Path, default=DATA_DIR / "prompts" / "bench_prompts.txt")
    p.add_argument(
        "--think-time",
        type=float,
        nargs="+",
        default=[0.0, 10.0],
        help="seconds a simulated person "
        "looks at a complete slate before picking; one latency phase each (load clients use the last)",
    )
    p.add_argument("--download-images", action="store_true", help="the client downloads every image it is sent")
    p.add_argument(
        "--browser",
        action="store_true",
        help="also time each latency phase in headless Chromium "
        "(Playwright with Debian's chromium): the page as people see it",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--startup-timeout", type=float, default=600)
    p.add_argument("--out", type=Path, default=Path("bench-results/app.json"))
    args = p.parse_args(argv)
    settings = settings_from_args(args)
    args.threads = args.threads if args.threads is not None else min(2, os.cpu_count() or 1)
    prompts = read_prompts(args.prompts)
    rng = np.random.default_rng(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="pasta-bench-app-"))
    log_db = Path(args.log_db) if args.log_db else folder / "logs.sqlite"
    port = free_port()
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    server = start_server(args, log_db, port)
    startup = time.perf_counter() - t0
    url = f"http://127.0.0.1:{port}/"
    phases, browser_phases, load, errors, load_seconds = {}, {}, [], [], 0.0
    if args.browser:
        from pasta.tools.bench_browser import browser_available, run_browser_phase

        if not browser_available():
            p.error("--browser needs playwright (pip install -e '.[test]') and Debian's chromium at /usr/bin/chromium")
    try:
        for think in args.think_time:
            print(
                f"latency phase: {args.sessions} sessions x {args.turns} turns, picking {think:g} s after each "
                "complete slate",
                flush=True,
            )
            phases[think] = [
                run_session(
                    url, prompts[(i + len(phases)) % len(prompts)], args.turns, rng, think, args.download_images
                )
                for i in range(args.sessions)
            ]
            if args.browser:
                print("latency phase in Chromium: the same, clicking images", flush=True)
                browser_phases[think] = run_browser_phase(
                    url,
                    prompts[len(phases) :] + prompts[: len(phases)],
                    args.sessions,
                    args.turns,
                    think,
                    args.seed,
                    settings.images_per_prompt,
                )
        if args.clients:
            print(f"load phase: {args.clients} concurrent clients", flush=True)
            lock = threading.Lock()

            def client_run(i: int) -> None:
                try:
                    result = run_session(
                        url,
                        prompts[(i + 5) % len(prompts)],
                        args.turns,
                        np.random.default_rng([args.seed, i]),
                        args.think_time[-1],
                        args.download_images,
                    )
                    with lock:
                        load.append(result)
                except Exception as error:  # counted and reported: the target is zero
                    with lock:
                        errors.append(f"client {i}: {type(error).__name__}: {error}")

            t_load = time.perf_counter()
            threads = [threading.Thread(target=client_run, args=(i,)) for i in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            load_seconds = time.perf_counter() - t_load
    finally:
        server.terminate()
        server.wait(timeout=60)
    sessions = [s for phase in phases.values() for s in phase]
    lost = check_logs(log_db, sessions + load, args.turns, settings.n_candidates)
    latency = {}
    for think, phase in phases.items():
        picks = [p for s in phase for p in s["picks"]]
        complete = summarize([p["complete_s"] for p in picks])
        ahead = [p["details"].get("timings", {}).get("rendered_ahead", 0.0) for p in picks]  # columns ready
        latency[think] = {
            "think_time_s": think,
            "pick_to_complete_slate": complete,
            "pick_to_first_images": summarize([p["first_images_s"] for p in picks]),
            "start_to_complete_slate": summarize([s["start"]["complete_s"] for s in phase]),
            "picks_with_candidates_proposed_ahead": sum(
                bool(p["details"].get("timings", {}).get("proposed_ahead")) for p in picks
            ),
            "picks_rendered_ahead": sum(a >= SLATE for a in ahead),
            "picks_partly_rendered_ahead": sum(0 < a < SLATE for a in ahead),
            "pick_to_complete_slate_rendered_ahead": summarize(
                [p["complete_s"] for p, a in zip(picks, ahead, strict=True) if a >= SLATE]
            ),
            "pick_to_complete_slate_nothing_rendered_ahead": summarize(
                [p["complete_s"] for p, a in zip(picks, ahead, strict=True) if a == 0]
            ),
            "meets_target": bool(picks) and complete["median_s"] <= TARGET_PICK_TO_SLATE_S,
            "server_timings_last_turn": picks[-1]["details"].get("timings") if picks else None,
        }
    browser_latency = {
        think: {
            "think_time_s": think,
            "pick_to_complete_slate": summarize([p["complete_s"] for s in phase for p in s["picks"]]),
            "pick_to_first_images": summarize([p["first_images_s"] for s in phase for p in s["picks"]]),
            "pick_to_status_ready": summarize([p["ready_s"] for s in phase for p in s["picks"]]),
            **{
                name: summarize([p["images"][key] for s in phase for p in s["picks"] if p["images"]])
                for name, key in (
                    ("pick_to_first_image_request", "first_request_s"),
                    ("pick_to_last_image_request", "last_request_s"),
                    ("pick_to_last_image_received", "last_response_s"),
                )
            },
            "start_to_complete_slate": summarize([s["start"]["complete_s"] for s in phase]),
            "start_to_first_images": summarize([s["start"]["first_images_s"] for s in phase]),
            "page_ready": summarize([s["page_ready_s"] for s in phase]),
        }
        for think, phase in browser_phases.items()
    }
    load_picks = summarize([p["complete_s"] for s in load for p in s["picks"]])
    load_ok = not args.clients or (not errors and not lost and len(load) == args.clients)
    result = {
        "benchmark": "app",
        "target_pick_to_slate_s": TARGET_PICK_TO_SLATE_S,
        "settings": {
            "generator": settings.generator,
            "tier": settings.tier,
            "threads": args.threads,
            "turns": args.turns,
            "sessions": args.sessions,
            "clients": args.clients,
            "prefetch": settings.prefetch,
            "render_ahead": settings.render_ahead,
            "sampling_steps": settings.sampling_steps,
            "sampler": settings.sampler,
            "guidance": settings.guidance,
            "download_images": args.download_images,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "server_startup_s": startup,
        "latency": list(latency.values()),
        "browser_latency": list(browser_latency.values()),
        "load": {
            "clients": args.clients,
            "think_time_s": args.think_time[-1],
            "completed_sessions": len(load),
            "errors": errors,
            "seconds": load_seconds,
            "pick_to_complete_slate": load_picks,
            "log_problems": lost,
            "meets_target": load_ok,
        },
    }
    print(
        f"\nserver up in {startup:.1f} s; generator {settings.generator}, prefetch "
        f"{'on' if settings.prefetch else 'off'}, render ahead {'on' if settings.render_ahead else 'off'}, "
        f"guidance {settings.guidance}, {settings.sampling_steps or 'default'} {settings.sampler} steps, images "
        f"{'downloaded' if args.download_images else 'not downloaded'}"
    )
    print(f"{'measure':<40} {'n':>3} {'median':>8} {'p90':>8} {'target':>8}  ahead: candidates, slates")
    for think, row in latency.items():
        for name, key, target in (
            (
                "pick -> complete next slate",
                "pick_to_complete_slate",
                f"{TARGET_PICK_TO_SLATE_S:.1f}s" + (" ok" if row["meets_target"] else " NO"),
            ),
            ("pick -> first images", "pick_to_first_images", "sooner"),
            ("  of which rendered ahead", "pick_to_complete_slate_rendered_ahead", ""),
            ("  of which nothing rendered ahead", "pick_to_complete_slate_nothing_rendered_ahead", ""),
            ("start -> complete first slate", "start_to_complete_slate", ""),
        ):
            values = row[key]
            ahead = (
                f"{row['picks_with_candidates_proposed_ahead']}/{values['n']}, {row['picks_rendered_ahead']}/{values['n']}"
                f" (+{row['picks_partly_rendered_ahead']} in part)"
                if key == "pick_to_complete_slate"
                else ""
            )
            if values.get("n"):
                print(
                    f"{name + f' (think {think:g} s)':<40} {values['n']:>3} {values['median_s']:>7.2f}s "
                    f"{values['p90_s']:>7.2f}s {target:>8}  {ahead}"
                )
    for think, row in browser_latency.items():
        for name, key in (
            ("pick -> complete next slate", "pick_to_complete_slate"),
            ("pick -> first images", "pick_to_first_images"),
            ("pick -> first image requested", "pick_to_first_image_request"),
            ("pick -> last image requested", "pick_to_last_image_request"),
            ("pick -> last image received", "pick_to_last_image_received"),
            ("pick -> status asks for a pick", "pick_to_status_ready"),
            ("start -> complete first slate", "start_to_complete_slate"),
            ("start -> first images", "start_to_first_images"),
            ("page load -> prompt box", "page_ready"),
        ):
            values = row[key]
            if values.get("n"):
                print(
                    f"{'browser: ' + name + f' (think {think:g} s)':<52} {values['n']:>3} "
                    f"{values['median_s']:>7.2f}s {values['p90_s']:>7.2f}s"
                )
    if load_picks.get("n"):
        print(
            f"{f'pick -> slate, {args.clients} clients at once':<40} {load_picks['n']:>3} "
            f"{load_picks['median_s']:>7.2f}s {load_picks['p90_s']:>7.2f}s"
        )
    print(f"load: {len(load)}/{args.clients} sessions completed, {len(errors)} errors, {len(lost)} log problems")
    print(f"load average before/after: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for line in errors + lost:
        print("  " + line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if not errors and not lost else 1
