"""`--prompts` for alignment: a named prompt set of a world's prompt-following task (`train:N`, `eval:N`, each
optionally restricted to some subjects) or a text file with one prompt per line."""

from __future__ import annotations

from pathlib import Path

from pasta.worlds import load_prompt_task
from pasta.worlds.world import PromptTask

MAX_PROMPTS = 100_000


def parse_subjects(text: str, task: PromptTask) -> tuple[str, ...]:
    """'coat,shirt' -> ('coat', 'shirt'), checked against the values of the task's subject axis."""
    subjects = tuple(s.strip() for s in text.split(",") if s.strip())
    if not subjects:
        raise ValueError(
            f"{task.subject_axis}s {text!r}: empty; choose from {list(task.attribute_values[task.subject_axis])}"
        )
    return task.check_subjects(subjects)


def load_prompts(spec: str | Path, world: str = "fashion") -> list[str]:
    """`train:N` (N training prompts of `world`, seed 0), `train:N:SEED`, `eval:N` (its held-out evaluation
    prompts), each optionally restricted to some subjects with a trailing `@a,b` (in the garment world
    `train:256@coat,shirt,pullover`), or a text file with one prompt per line (blank lines and lines starting with
    # are skipped)."""
    spec = str(spec)
    kind, _, rest = spec.partition(":")
    if kind in ("train", "eval") and rest and not Path(spec).exists():
        task = load_prompt_task(world)
        rest, _, subject_list = rest.partition("@")
        subjects = parse_subjects(subject_list, task) if subject_list else ()
        parts = rest.split(":")
        try:
            n, seed = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
        except ValueError:
            raise ValueError(
                f"--prompts {spec!r}: expected {kind}:N or {kind}:N:SEED with integers, optionally "
                f"@{task.subject_axis},{task.subject_axis}"
            ) from None
        if not 1 <= n <= MAX_PROMPTS:
            raise ValueError(f"--prompts {spec!r}: N must be between 1 and {MAX_PROMPTS}")
        if kind == "train":
            return [text for text, _ in task.training_prompts(n, seed, subjects)]
        return [text for text, _ in task.evaluation_prompts(n, seed=1234 + seed, subjects=subjects)]
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--prompts {spec!r} is neither train:N, eval:N nor a text file")
    prompts = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not prompts:
        raise ValueError(f"--prompts file {path} has no prompts")
    return prompts
