"""`pasta`: the command line for people and researchers. `pasta --help` lists the subcommands."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pasta.config import SettingsError, settings_arguments, settings_from_args
from pasta.console import EXPECTED, report


def cmd_app(args: argparse.Namespace) -> int:
    from pasta.app.ui import build_demo, launch
    from pasta.console import report

    settings = settings_from_args(args).with_overrides(host=args.host, port=args.port)
    try:
        demo = build_demo(settings)  # a bad log path, a foreign log store or missing weights stop here
    except Exception as error:
        return report(error)
    launch(demo, settings, share=args.share)
    return 0


def cmd_propose(args: argparse.Namespace) -> int:
    from pasta.components import make_candidate_generator

    settings = settings_from_args(args)
    t0 = time.perf_counter()
    generator = make_candidate_generator(settings)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    candidates = generator.propose([args.prompt], n=args.n)
    took = time.perf_counter() - t0
    if args.json:
        print(
            json.dumps(
                {
                    "prompt": args.prompt,
                    "generator": generator.name,
                    "seconds": took,
                    "load_seconds": load,
                    "candidates": [c.__dict__ for c in candidates],
                },
                indent=2,
            )
        )
        return 0
    width = max(len(c.category) for c in candidates)
    for i, c in enumerate(candidates, 1):
        print(f"{i:2d}  {c.category:<{width}}  {c.text}")
    print(f"\n{len(candidates)} candidates from {generator.name} in {took:.3f} s (model load {load:.1f} s)")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from pasta import logbook

    try:
        if args.action == "export":
            fmt = args.format or ("jsonl" if str(args.dest).endswith(".jsonl") else "parquet")
            counts = logbook.export(args.db, args.dest, fmt)
        else:
            counts = logbook.import_(
                args.db,
                args.dest,
                **({"source": args.source} if args.source else {}),
                **({"image_dir": args.image_dir} if args.image_dir else {}),
            )
    except (ValueError, logbook.LogStoreError) as error:
        print(f"pasta logs {args.action}: error: {error}", file=sys.stderr)
        return 2
    verb = "exported from" if args.action == "export" else "imported into"
    print(", ".join(f"{n} {table}" for table, n in counts.items()) + f" {verb} {args.db}")
    return 0


def _delegate(module: str, function: str = "main"):
    """Subcommands with their own typed options: they parse the rest of the command line themselves."""

    def run(argv: list[str]) -> int:
        import importlib

        return getattr(importlib.import_module(module), function)(argv) or 0

    return run


# (words of the command line) -> the function that parses the rest of it.
DELEGATES = {
    ("bench", "propose"): _delegate("pasta.tools.bench_propose"),
    ("bench", "app"): _delegate("pasta.tools.bench_app"),
    ("bench", "scale"): _delegate("pasta.tools.bench_scale"),
    ("eval", "t2i"): _delegate("pasta.tools.eval_t2i"),
    ("eval", "align"): _delegate("pasta.align.eval_align"),
    ("align",): _delegate("pasta.align.cli"),
    ("eval", "user-model"): _delegate("user_sim.evaluate_user_model"),
    ("eval", "agents"): _delegate("user_sim.evaluate_agents"),
    ("eval", "closed-loop"): _delegate("user_sim.closed_loop"),
    ("train", "user-model"): _delegate("pasta.policy.train_user_model"),
    ("train", "q"): _delegate("pasta.policy.train_q"),
    ("retrain",): _delegate("pasta.policy.train_q", "retrain_main"),
    ("simulate",): _delegate("user_sim.simulate"),
    ("render",): _delegate("pasta.tools.render_bank"),
}


def build_parser() -> argparse.ArgumentParser:
    parent = settings_arguments()
    parser = argparse.ArgumentParser(
        prog="pasta",
        description="PASTA: personalized, sequential text-to-image co-creation.",
        epilog="Settings may also come from PASTA_* environment variables; flags win. Every command also takes "
        "--progress (progress bars even when not on a terminal) and --debug (tracebacks with errors).",
    )
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)

    p = sub.add_parser("app", parents=[parent], help="launch the co-creation app in a browser")
    p.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    p.set_defaults(func=cmd_app)

    p = sub.add_parser("propose", parents=[parent], help="print the candidate prompt expansions for a prompt")
    p.add_argument("prompt", help='the prompt to expand, e.g. "a red dress"')
    p.add_argument("--n", type=int, default=25, help="number of candidates (default 25)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_propose)

    p = sub.add_parser(
        "logs",
        help="export a log store (Parquet tables or JSONL episodes) or import into one: an "
        "export, episodes, or Pick-a-Pic-style pairwise preferences (.parquet)",
    )
    p.add_argument("action", choices=("export", "import"))
    p.add_argument("db", help="the log store (import creates it when missing)")
    p.add_argument(
        "dest",
        help="export: a folder (parquet) or a .jsonl file; import: an export folder, a .jsonl "
        "file of episodes or a .parquet file of pairwise preferences",
    )
    p.add_argument(
        "--format",
        choices=("parquet", "jsonl"),
        default=None,
        help="export format (default: jsonl when dest ends in .jsonl, else parquet)",
    )
    p.add_argument("--source", default=None, help="pairwise import: source name (default: the file's name)")
    p.add_argument("--image-dir", default=None, help="pairwise import: where to save images given as bytes")
    p.set_defaults(func=cmd_logs)

    # Listed for `pasta --help`; run through DELEGATES, so `pasta eval t2i --help` shows that command's options.
    for name, what, text in (
        (
            "bench",
            "propose | app | scale",
            "benchmarks that print a table and write JSON: propose (candidate generators), "
            "app (a real server driven by clients), scale (local, process and Ray executors)",
        ),
        (
            "eval",
            "t2i | user-model | agents | closed-loop | align",
            "evaluations that write JSON and plots: t2i (embedded image model), user-model (EM on planted simulated "
            "users), agents (slate policies), closed-loop (simulate, log, retrain, evaluate per population of "
            "simulated users), align (aligned adapters)",
        ),
        (
            "align",
            "dpok | rwr | focus | reward",
            "train an aligned LoRA adapter (DPOK, reward-weighted, Focus-N-Fix) or the alignment reward",
        ),
        ("train", "user-model | q", "train a model from a log store: user-model (EM), q (IQL agent)"),
        ("retrain", "", "closed loop: refit the user model and the Q-network from a log store in one command"),
        ("simulate", "", "run a slate policy against simulated users and log the sessions"),
        ("render", "", "render a prompt set into an image bank (Parquet), here or on Ray workers"),
    ):
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER, metavar=what or "options")
    return parser


GLOBAL_FLAGS = {"--progress": "PASTA_PROGRESS", "--debug": "PASTA_DEBUG"}
"""Flags any command takes, anywhere on its line: progress bars off a terminal too; tracebacks with errors."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    for flag, variable in GLOBAL_FLAGS.items():
        if flag in argv:
            argv = [a for a in argv if a != flag]
            os.environ[variable] = "1"
    parser = build_parser()
    try:
        for words, run in DELEGATES.items():
            if tuple(argv[: len(words)]) == words:
                return int(run(argv[len(words) :]))
        if argv and argv[0] in ("bench", "eval", "train"):
            choices = sorted(" ".join(w) for w in DELEGATES if w[0] == argv[0])
            parser.error(f"{argv[0]} needs one of: {', '.join(choices)}")
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except SettingsError as error:
        print(f"pasta: error: {error}", file=sys.stderr)
        return 2
    except EXPECTED as error:  # a bad path, option or missing extra: one line (the traceback with --debug)
        return report(error)


if __name__ == "__main__":
    sys.exit(main())
