"""`--prompts` for alignment: a named prompt set of the attribute world (`train:N`, `eval:N`) or a text file."""

from __future__ import annotations

from pathlib import Path

from pasta.worlds import fashion
from pasta.worlds.fashion_task import parse_garments, training_prompts

MAX_PROMPTS = 100_000


def load_prompts(spec: str | Path) -> list[str]:
    """`train:N` (N training prompts, seed 0), `train:N:SEED`, `eval:N` (the held-out evaluation prompts), each
    optionally restricted to some garments with a trailing `@coat,shirt` (`train:256@coat,shirt,pullover`), or a
    text file with one prompt per line (blank lines and lines starting with # are skipped)."""
    spec = str(spec)
    kind, _, rest = spec.partition(":")
    if kind in ("train", "eval") and rest and not Path(spec).exists():
        rest, _, garment_list = rest.partition("@")
        garments = parse_garments(garment_list) if garment_list else ()
        parts = rest.split(":")
        try:
            n, seed = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
        except ValueError:
            raise ValueError(
                f"--prompts {spec!r}: expected {kind}:N or {kind}:N:SEED with integers, optionally @garment,garment"
            ) from None
        if not 1 <= n <= MAX_PROMPTS:
            raise ValueError(f"--prompts {spec!r}: N must be between 1 and {MAX_PROMPTS}")
        if kind == "train":
            return [text for text, _ in training_prompts(n, seed, garments)]
        return [text for text, _ in fashion.evaluation_prompts(n, seed=1234 + seed, garments=garments)]
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--prompts {spec!r} is neither train:N, eval:N nor a text file")
    prompts = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not prompts:
        raise ValueError(f"--prompts file {path} has no prompts")
    return prompts
