"""`pasta`: the command line for people and researchers. `pasta --help` lists the subcommands."""

from __future__ import annotations

import argparse
import json
import sys
import time

from pasta.config import Settings, SettingsError


def _settings_parent() -> argparse.ArgumentParser:
    """Flags that override PASTA_* environment variables; every subcommand takes them."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model settings (override PASTA_* environment variables)")
    g.add_argument("--tier", help="auto | embedded | hub (env PASTA_TIER)")
    g.add_argument("--generator", help="lmm | retrieval: embedded-tier candidate generator (env PASTA_GENERATOR)")
    g.add_argument("--device", help="auto | cpu | cuda | mps (env PASTA_DEVICE)")
    g.add_argument("--t2i-model", help="hub tier: diffusers pipeline id or folder (env PASTA_T2I_MODEL)")
    g.add_argument("--t2i-model-dir", help="embedded tier: diffusion weights folder (env PASTA_T2I_MODEL_DIR)")
    g.add_argument("--adapter", help="LoRA adapter folder for the text-to-image model (env PASTA_ADAPTER)")
    g.add_argument("--embedder-model", help="hub tier: CLIP/SigLIP id or folder (env PASTA_EMBEDDER_MODEL)")
    g.add_argument("--lmm-model", help="hub tier or endpoint: chat model id (env PASTA_LMM_MODEL)")
    g.add_argument("--lmm-endpoint", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    g.add_argument("--log-db", help="SQLite log store path (env PASTA_LOG_DB)")
    return p


_SETTING_FLAGS = ("tier", "generator", "device", "t2i_model", "t2i_model_dir", "adapter", "embedder_model",
                  "lmm_model", "lmm_endpoint", "log_db")


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings.from_env(**{k: getattr(args, k, None) for k in _SETTING_FLAGS})


def cmd_app(args: argparse.Namespace) -> int:
    from pasta.ui import CSS, build_demo

    settings = settings_from_args(args).with_overrides(host=args.host, port=args.port)
    demo = build_demo(settings)
    demo.launch(server_name=settings.host, server_port=settings.port, share=args.share, css=CSS)
    return 0


def cmd_propose(args: argparse.Namespace) -> int:
    from pasta.backends.factory import make_candidate_generator

    settings = settings_from_args(args)
    t0 = time.perf_counter()
    generator = make_candidate_generator(settings)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    candidates = generator.propose([args.prompt], n=args.n)
    took = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"prompt": args.prompt, "generator": generator.name, "seconds": took, "load_seconds": load,
                          "candidates": [c.__dict__ for c in candidates]}, indent=2))
        return 0
    width = max(len(c.category) for c in candidates)
    for i, c in enumerate(candidates, 1):
        print(f"{i:2d}  {c.category:<{width}}  {c.text}")
    print(f"\n{len(candidates)} candidates from {generator.name} in {took:.3f} s (model load {load:.1f} s)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pasta import bench

    return bench.main(args.what, args.rest, settings_from_args(args))


def cmd_eval(args: argparse.Namespace) -> int:
    if args.what == "t2i":
        from pasta.eval_t2i import main as eval_t2i

        return eval_t2i(args.rest) or 0
    raise SystemExit(f"unknown evaluation {args.what!r}")


def build_parser() -> argparse.ArgumentParser:
    parent = _settings_parent()
    parser = argparse.ArgumentParser(
        prog="pasta", description="PASTA: personalized, sequential text-to-image co-creation.",
        epilog="Settings may also come from PASTA_* environment variables; flags win.",
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

    p = sub.add_parser("bench", parents=[parent], help="benchmarks that print a table and write JSON")
    p.add_argument("what", choices=["propose"], help="what to measure")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options of that benchmark (see `pasta bench X --help`)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("eval", parents=[parent], help="evaluations that write JSON and plots")
    p.add_argument("what", choices=["t2i"], help="t2i: the embedded text-to-image model on held-out prompts")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options of that evaluation (see `pasta eval X --help`)")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingsError as error:
        print(f"pasta: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
