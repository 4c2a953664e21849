"""Hub-tier text-to-image: any diffusers text-to-image pipeline, by model id or local folder.

The default is SD-Turbo (adversarially distilled Stable Diffusion 2.1): 1-4 steps without classifier-free
guidance, so a turn of 16 images at 512x512 takes about a second on one GPU. Other pipelines (SDXL-Turbo, a full
SD model with more steps and guidance) work by changing the constructor's sampling settings.

Each prompt is rendered by its own pipeline call with its own seeded generator, so a column's images depend only
on (prompt, seed) and never on which other prompts share the turn. The generator lives on the CPU, so the same
seed gives the same starting noise on any device.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch
from PIL import Image

from pasta import torch_thread

DEFAULT_MODEL = "stabilityai/sd-turbo"
ADAPTER_NAME = "aligned"


def default_dtype(device: torch.device) -> torch.dtype:
    """Half precision where it is fast and safe (CUDA), full precision elsewhere."""
    return torch.float16 if device.type == "cuda" else torch.float32


def cannot_load(what: str, model: str, error: Exception) -> str:
    """The message for a model that would not load: a broken local folder, or an id that needs the hub."""
    if Path(model).exists():
        return f"could not load the {what} from the folder {model}: {error}"
    return (
        f"could not load the {what} {model!r}: it is not a local folder and is not available offline. "
        f"Allow model hub access (unset HF_HUB_OFFLINE) or pass a folder saved with `save_pretrained`. ({error})"
    )


class HubTextToImage:
    """`TextToImage` over a diffusers pipeline; deterministic per (prompt, seed); loads a peft LoRA adapter."""

    name = "hub"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        num_inference_steps: int = 1,
        guidance_scale: float = 0.0,
        height: int = 512,
        width: int = 512,
        adapter: str | Path | None = None,
    ) -> None:
        from diffusers import AutoPipelineForText2Image

        self.model = str(model)
        self.device = torch.device(device)
        self.dtype = dtype or default_dtype(self.device)
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.height = height
        self.width = width
        try:
            self.pipe = AutoPipelineForText2Image.from_pretrained(self.model, dtype=self.dtype)
        except OSError as error:
            raise OSError(cannot_load("text-to-image pipeline", self.model, error)) from error
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)  # progress is shown per turn by the caller
        self.adapter: str | None = None
        self._lock = threading.Lock()  # one call at a time: a pipeline's scheduler keeps per-call state
        if adapter:
            self.load_adapter(adapter)

    def load_adapter(self, path: str | Path) -> None:
        """Attach a LoRA adapter saved with peft's `save_pretrained` (e.g. from `get_peft_model(unet, cfg)`).

        The LoRA layers are injected into `pipe.unet` in place, so the pipeline keeps calling its own unet and now
        runs the adapter. A new adapter replaces the previous one; adapters do not stack. Every saved LoRA weight
        must land in the unet: an adapter made for another model is an error (leaving the base model), never
        silently ignored.
        """
        from peft import PeftConfig, set_peft_model_state_dict
        from peft.utils import load_peft_weights

        path = Path(path)
        if not (path / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{path} is not a LoRA adapter folder (no adapter_config.json)")
        config = PeftConfig.from_pretrained(str(path))
        weights = load_peft_weights(str(path), device="cpu")
        with self._lock:
            unet = self.pipe.unet
            if self.adapter is not None:
                unet.unload_lora()  # back to the original layers
                self.adapter = None
            try:
                unet.add_adapter(config, adapter_name=ADAPTER_NAME)
                # Accepts keys with or without PeftModel's "base_model.model." prefix.
                result = set_peft_model_state_dict(unet, weights, adapter_name=ADAPTER_NAME)
                missing = [key for key in result.missing_keys if f".{ADAPTER_NAME}." in key]
                if missing or result.unexpected_keys:
                    raise ValueError(
                        f"{len(missing)} LoRA weights missing and {len(result.unexpected_keys)} unexpected, "
                        f"e.g. {(missing + result.unexpected_keys)[0]}"
                    )
            except (RuntimeError, ValueError) as error:  # wrong target modules, shapes or names
                unet.unload_lora()
                raise ValueError(f"the adapter at {path} does not fit the model {self.model!r}: {error}") from error
            unet.eval()
            self.adapter = str(path)

    def generate(self, prompts: list[str], seeds: list[int], n_per_prompt: int = 4) -> list[list[Image.Image]]:
        """`n_per_prompt` PIL images for each prompt, grouped by prompt; prompt i's images use seeds[i] alone."""
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings, not a single string")
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds: give one seed per prompt")
        if n_per_prompt < 1:
            raise ValueError(f"n_per_prompt={n_per_prompt} must be at least 1")
        return [self._render(prompt, int(seed), n_per_prompt) for prompt, seed in zip(prompts, seeds)]

    @torch.inference_mode()
    def _render(self, prompt: str, seed: int, n: int) -> list[Image.Image]:
        generator = torch.Generator("cpu").manual_seed(seed)
        with self._lock:
            out = self.pipe(
                prompt=prompt,
                num_images_per_prompt=n,
                num_inference_steps=self.num_inference_steps,
                guidance_scale=self.guidance_scale,
                height=self.height,
                width=self.width,
                generator=generator,
                output_type="pil",
                callback_on_step_end=_give_way,
            )
        return list(out.images)


def _give_way(pipe, step: int, timestep, callback_kwargs: dict) -> dict:
    """diffusers' step callback: rendering done ahead of time (`pasta.ahead`) stops at the next denoising step when
    someone is waiting for the torch thread."""
    if torch_thread.preempted():
        raise torch_thread.Preempted("rendering gave way to interactive work")
    return callback_kwargs
