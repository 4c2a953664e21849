"""One typed settings object for the whole app and CLI.

Precedence: defaults < environment variables (PASTA_*) < command-line flags. Every value is validated once, at
start-up, and a bad one stops the program with a message naming the setting and what it may be.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

Tier = Literal["auto", "embedded", "hub"]
Generator = Literal["lmm", "retrieval"]
Device = Literal["auto", "cpu", "cuda", "mps"]
WorldName = Literal["fashion", "emoji"]
Guidance = Literal["auto", "distilled", "cfg"]
Sampler = Literal["unipc", "dpm-solver++"]
LMMQuantize = Literal["int8", "none"]


class SettingsError(ValueError):
    """A setting has a value it may not have; the message names it and the allowed values."""


def default_log_db() -> Path:
    return Path(os.environ.get("PASTA_HOME", Path.home() / ".pasta")) / "logs.sqlite"


@dataclass
class Settings:
    tier: Tier = "auto"
    """Model tier: `embedded` (offline, CPU, shipped weights), `hub` (model ids on a GPU), or `auto` (hub only
    when a GPU is present and hub access is configured, else embedded)."""
    generator: Generator = "lmm"
    """Candidate generator on the embedded tier: the small LMM (with retrieval top-up) or retrieval alone."""
    device: Device = "auto"
    """Torch device for the models; `auto` picks cuda when present."""
    t2i_model: str = "stabilityai/sd-turbo"
    """Hub tier: diffusers text-to-image pipeline id or local folder."""
    world: WorldName = "fashion"
    """Embedded tier: what the offline model draws: `fashion` (ten garments, 32 px) or `emoji` (1,191 emoji
    subjects in scenes, 64 px); the page says which under the prompt box."""
    t2i_model_dir: str = ""
    """Embedded tier: folder with the project's diffusion weights (default: the world's, models/embedded/t2i or
    models/embedded/t2i_emoji)."""
    adapter: str = ""
    """Optional LoRA adapter folder for the text-to-image model (the aligned model)."""
    embedder_model: str = "openai/clip-vit-base-patch32"
    """Hub tier: CLIP or SigLIP model id or local folder."""
    lmm_model: str = "HuggingFaceTB/SmolLM2-1.7B-Instruct"
    """Hub tier: transformers chat model id or local folder (ignored when lmm_endpoint is set)."""
    lmm_endpoint: str = ""
    """OpenAI-compatible chat endpoint base URL (vLLM, Ollama, TGI, hosted APIs), e.g. http://localhost:8000/v1."""
    lmm_api_key: str = ""
    """API key for lmm_endpoint (read from PASTA_LMM_API_KEY; never logged)."""
    lmm_quantize: LMMQuantize = "int8"
    """A local chat model on the CPU runs its linear layers in int8 (torch's dynamic quantization): on 2 cores a
    decoding step of SmolLM2-135M for the 5 category conversations took 34 ms instead of 77 ms, and 25 candidates
    take about 1.4 s instead of 3.3 s. "none": float weights (ignored on a GPU)."""
    log_db: str = field(default_factory=lambda: str(default_log_db()))
    """SQLite log store path."""
    image_dir: str = ""
    """Folder for the images the app shows to people who consented to logging (default: `images/` beside log_db);
    the log store records their paths."""
    agent_dir: str = ""
    """Folder with the trained slate agent, `qnet/` (TwinQ.save) and `user_model/` (UserModel.save); default
    models/embedded/agent. Without both, the app falls back to the LMM-order baseline and says so."""
    session_estimate: bool = True
    """The trained agent also learns from each session's own picks what its user types miss (how near the first
    prompt the person stays, which edits they favour), and explores when the types explain the picks poorly
    (`pasta.policy.session_estimate`; the "+adapt+explore" agent of the README's figures). Off: the types alone."""
    threads: int = 0
    """Torch CPU threads for the app (0: torch's default). On a shared or small machine 1 or 2 avoids
    oversubscription, which can slow sampling down many times."""
    sampling_steps: int = 6
    """Embedded tier: diffusion sampling steps per image in the app (0: the weights' own, 15, which the
    evaluations use). Measured on the garment model's 512 held-out images (`pasta eval t2i --n-prompts 128`): all
    requested attributes right in 0.873 with UniPC at 6 steps, 0.881 at 10 (a tie: -0.008, se 0.010), in 0.60 of
    the time; DPM-Solver++ at 6 steps 0.852 (-0.029, se 0.011)."""
    sampler: Sampler = "unipc"
    """Embedded tier: the multistep ODE solver. UniPC (Zhao et al. 2023) reads as accurately at 6 steps as either
    solver at 10; "dpm-solver++" is the sampler of the app's earlier figures and alignment adapters."""
    guidance: Guidance = "auto"
    """Embedded tier: "auto" samples each step with one UNet forward where the weights ship a distilled-guidance
    adapter (`guidance_lora/`), about twice as fast as classifier-free guidance's two ("cfg"); "distilled" requires
    the adapter. With an alignment adapter (`adapter`) sampling is always "cfg", as that adapter was measured."""
    prefetch: bool = True
    """While a person looks at a slate, propose each column's next candidates on idle CPU (`pasta.candidates.prefetch`), so
    that a pick need not wait for the LMM."""
    render_ahead: bool = True
    """While a person looks at a slate, also choose and render each column's next slate, the likeliest pick first
    (`pasta.ahead`): a pick whose slate is ready shows it at once. Off on ZeroGPU (each render holds a GPU)."""
    n_candidates: int = 25
    """L_C: candidate expansions proposed per turn (PASTA paper)."""
    slate_size: int = 4
    """L: prompts shown per turn, at most one per category (PASTA paper)."""
    images_per_prompt: int = 4
    """M: images rendered per slate prompt (PASTA paper)."""
    turns: int = 5
    """H: turns per session (PASTA paper)."""
    host: str = "127.0.0.1"
    port: int = 7860

    def __post_init__(self) -> None:
        self.validate()

    def resolved_image_dir(self) -> Path:
        return Path(self.image_dir).expanduser() if self.image_dir else Path(self.log_db).expanduser().parent / "images"

    def validate(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise SettingsError(
                    f"{name}={getattr(self, name)!r} is not allowed: choose one of {', '.join(allowed)}"
                )
        for name, low, high in (
            ("n_candidates", 5, 200),
            ("slate_size", 1, 5),
            ("images_per_prompt", 1, 16),
            ("turns", 1, 50),
            ("port", 1, 65535),
            ("threads", 0, 256),
            ("sampling_steps", 0, 200),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise SettingsError(f"{name}={value!r} is not allowed: use a whole number from {low} to {high}")
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise SettingsError(f"{name}={getattr(self, name)!r} is not allowed: use on or off")
        if self.slate_size > self.n_candidates:
            raise SettingsError(f"slate_size={self.slate_size} exceeds n_candidates={self.n_candidates}")
        if self.lmm_endpoint and not self.lmm_endpoint.startswith(("http://", "https://")):
            raise SettingsError(f"lmm_endpoint={self.lmm_endpoint!r} is not allowed: give an http:// or https:// URL")
        if not self.log_db:
            raise SettingsError("log_db is empty: give a path for the SQLite log store")

    def resolved_tier(self) -> Literal["embedded", "hub"]:
        """`auto` means hub only when a GPU is present and hub access is configured (a token or a Space)."""
        if self.tier != "auto":
            return self.tier
        import torch

        hub_access = bool(os.environ.get("HF_TOKEN") or os.environ.get("SPACE_ID"))
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
        return "hub" if torch.cuda.is_available() and hub_access and not offline else "embedded"

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def public(self) -> dict[str, Any]:
        """Settings safe to print or log (no secrets)."""
        out = asdict(self)
        out["lmm_api_key"] = "***" if self.lmm_api_key else ""
        return out

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then PASTA_<NAME> environment variables, then keyword overrides (CLI flags)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            for key in (f"PASTA_{f.name.upper()}", *_ALSO_FROM.get(f.name, ())):
                if key in environ:
                    values[f.name] = _parse(f.name, environ[key], key)
                    break
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_CHOICES: dict[str, tuple[str, ...]] = {
    "tier": get_args(Tier),
    "generator": get_args(Generator),
    "device": get_args(Device),
    "world": get_args(WorldName),
    "guidance": get_args(Guidance),
    "sampler": get_args(Sampler),
    "lmm_quantize": get_args(LMMQuantize),
}
_ALSO_FROM = {"host": ("GRADIO_SERVER_NAME",), "port": ("GRADIO_SERVER_PORT",)}
"""Gradio's own settings, read where the PASTA_ one is not set (hosting platforms set these)."""
_INT_FIELDS = {"n_candidates", "slate_size", "images_per_prompt", "turns", "port", "threads", "sampling_steps"}
_BOOL_FIELDS = {"prefetch", "render_ahead", "session_estimate"}
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _parse(name: str, raw: str, source: str) -> Any:
    if name in _BOOL_FIELDS:
        if raw.strip().lower() not in _BOOLEANS:
            raise SettingsError(f"{source}={raw!r} is not allowed: {name} must be on or off")
        return _BOOLEANS[raw.strip().lower()]
    if name in _INT_FIELDS:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{source}={raw!r} is not allowed: {name} must be a whole number") from None
    return raw.strip()


def settings_arguments() -> argparse.ArgumentParser:
    """Flags that override PASTA_* environment variables; every subcommand takes them."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model settings (override PASTA_* environment variables)")
    g.add_argument("--tier", help="auto | embedded | hub (env PASTA_TIER)")
    g.add_argument("--generator", help="lmm | retrieval: embedded-tier candidate generator (env PASTA_GENERATOR)")
    g.add_argument("--device", help="auto | cpu | cuda | mps (env PASTA_DEVICE)")
    g.add_argument("--t2i-model", help="hub tier: diffusers pipeline id or folder (env PASTA_T2I_MODEL)")
    g.add_argument("--world", help="fashion | emoji: what the embedded tier draws (env PASTA_WORLD)")
    g.add_argument("--t2i-model-dir", help="embedded tier: diffusion weights folder (env PASTA_T2I_MODEL_DIR)")
    g.add_argument("--adapter", help="LoRA adapter folder for the text-to-image model (env PASTA_ADAPTER)")
    g.add_argument("--embedder-model", help="hub tier: CLIP/SigLIP id or folder (env PASTA_EMBEDDER_MODEL)")
    g.add_argument("--lmm-model", help="hub tier or endpoint: chat model id (env PASTA_LMM_MODEL)")
    g.add_argument("--lmm-endpoint", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    g.add_argument(
        "--lmm-quantize",
        help="int8 | none: a local chat model's linear layers on the CPU (env PASTA_LMM_QUANTIZE; default int8)",
    )
    g.add_argument("--log-db", help="SQLite log store path (env PASTA_LOG_DB)")
    g.add_argument(
        "--image-dir", help="folder for the images the app shows (env PASTA_IMAGE_DIR; default beside the log store)"
    )
    g.add_argument("--agent-dir", help="trained slate agent folder with qnet/ and user_model/ (env PASTA_AGENT_DIR)")
    g.add_argument(
        "--session-estimate",
        choices=("on", "off"),
        help="the agent also adapts to each session's own picks (env PASTA_SESSION_ESTIMATE; default on)",
    )
    g.add_argument("--threads", type=int, help="torch CPU threads, 0 for torch's default (env PASTA_THREADS)")
    g.add_argument(
        "--sampling-steps",
        type=int,
        help="embedded tier: diffusion steps per image, 0 for the weights' own (env PASTA_SAMPLING_STEPS; default 6)",
    )
    g.add_argument(
        "--sampler",
        help="unipc | dpm-solver++: embedded tier, the diffusion solver (env PASTA_SAMPLER; default unipc)",
    )
    g.add_argument(
        "--guidance",
        help="auto | distilled | cfg: embedded tier, one UNet forward a step with the shipped distilled-guidance "
        "adapter or two with classifier-free guidance (env PASTA_GUIDANCE; default auto)",
    )
    g.add_argument(
        "--prefetch",
        choices=("on", "off"),
        help="propose the next candidates while a person decides (env PASTA_PREFETCH; default on)",
    )
    g.add_argument(
        "--render-ahead",
        choices=("on", "off"),
        help="render each column's next slate while a person decides (env PASTA_RENDER_AHEAD; default on)",
    )
    return p


SETTING_FLAGS = (
    "tier",
    "generator",
    "device",
    "world",
    "t2i_model",
    "t2i_model_dir",
    "adapter",
    "embedder_model",
    "lmm_model",
    "lmm_endpoint",
    "lmm_quantize",
    "log_db",
    "image_dir",
    "agent_dir",
    "session_estimate",
    "threads",
    "sampling_steps",
    "sampler",
    "guidance",
    "prefetch",
    "render_ahead",
)
"""The settings every subcommand takes as flags (`settings_arguments`), by attribute name."""


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags = {k: getattr(args, k, None) for k in SETTING_FLAGS}
    for name in _BOOL_FIELDS & flags.keys():
        if flags[name] is not None:
            flags[name] = _parse(name, flags[name], f"--{name}")
    return Settings.from_env(**flags)
