"""The text-to-image model as the alignment algorithms see it: a diffusers `UNet2DConditionModel`, its noise
schedule, text conditioning, the classifier-free-guided output (converted to epsilon where DPOK's KL bound needs
it), and the map from the UNet's sample to pixels. Epsilon- and v-prediction models are both served.

The embedded model (pasta.backends.embedded_t2i) denoises a space-to-depth view of its RGB pixels, so "pixels" is a
reshape, not a decoder, and every reward sees exactly the image the app shows: the sampling loop is the app's own. The UNet passed to each method is
explicit: the same `EmbeddedDiffusion` serves the frozen base model and the LoRA-adapted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pasta.backends.embedded_t2i import (
    EmbeddedTextToImage,
    denoise,
    from_patches,
    guided_output,
    initial_noise,
    new_sampler,
    prediction_target,
    to_patches,
    weights_fingerprint,
)
from pasta.backends.minilm import MiniLM


@dataclass
class Condition:
    """MiniLM conditioning of N prompts: pooled [N,384], token states [N,L,384], attention mask [N,L]."""

    pooled: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.pooled)

    def select(self, index) -> Condition:
        return Condition(self.pooled[index], self.tokens[index], self.mask[index])

    def repeat_interleave(self, n: int) -> Condition:
        return Condition(*(t.repeat_interleave(n, 0) for t in (self.pooled, self.tokens, self.mask)))

    def astuple(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.pooled, self.tokens, self.mask

    @staticmethod
    def cat(parts: list[Condition]) -> Condition:
        return Condition(*(torch.cat([getattr(p, k) for p in parts]) for k in ("pooled", "tokens", "mask")))


class EmbeddedDiffusion:
    """The embedded model as the alignment algorithms see it: the app's `EmbeddedTextToImage` (same weights, same
    sampler, same conditioning) with its UNet frozen in float32, the DDPM training schedule, and per-prompt caches."""

    def __init__(self, folder: str | Path | None = None, *, text: MiniLM | None = None, device: str = "cpu") -> None:
        from diffusers import DDPMScheduler

        self.t2i = EmbeddedTextToImage(folder, text=text, device=device, bfloat16=False, guidance="cfg")
        self.folder, self.config, self.device, self.text = (
            self.t2i.folder,
            self.t2i.config,
            self.t2i.device,
            self.t2i.text,
        )
        self.unet = self.t2i.base_unet
        self.unet.requires_grad_(False).eval()
        self.train_scheduler = DDPMScheduler.from_pretrained(self.folder / "scheduler")
        self.num_train_timesteps = int(self.train_scheduler.config.num_train_timesteps)
        self.alphas_cumprod = self.train_scheduler.alphas_cumprod.to(torch.float32)
        self.prediction_type = str(self.train_scheduler.config.prediction_type)
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(
                f"{self.folder}/scheduler: prediction_type {self.prediction_type!r} is not supported "
                "(epsilon or v_prediction)"
            )
        self._uncond: Condition | None = None
        self._cache: dict[str, Condition] = {}

    # ------------------------------------------------------------------------------------------ shapes

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        c = self.config
        side = c.image_size // c.patch_size
        return (3 * c.patch_size**2, side, side)

    def initial_noise(self, seeds: list[int], n_per_seed: int = 1) -> torch.Tensor:
        """The app's noise for (seed, image index): base and adapted models start from the same x_T."""
        return initial_noise(list(seeds), n_per_seed, self.sample_shape).to(self.device)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """UNet sample [N,12,16,16] -> pixels [N,3,32,32] (nominally in [-1, 1]); differentiable."""
        return from_patches(x, self.config.patch_size)

    def from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return to_patches(pixels, self.config.patch_size)

    def fingerprint(self) -> str:
        return weights_fingerprint(self.folder / "unet")

    def describe(self) -> dict:
        state = self.folder / "train_state.json"
        return {
            "model_dir": str(self.folder),
            "unet_sha256_16": self.fingerprint(),
            "train_state": state.read_text().strip() if state.exists() else None,
        }

    # -------------------------------------------------------------------------------------- conditioning

    def condition(self, prompts: list[str]) -> Condition:
        """MiniLM conditioning, cached per prompt (prompts repeat across rounds)."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        if missing:
            pooled, tokens, mask = self.text.encode(missing, self.config.max_tokens)
            for i, p in enumerate(missing):
                self._cache[p] = Condition(pooled[i : i + 1], tokens[i : i + 1], mask[i : i + 1])
        return Condition.cat([self._cache[p] for p in prompts]) if prompts else self.condition([""]).select(slice(0, 0))

    def unconditional(self, n: int) -> Condition:
        if self._uncond is None:
            self._uncond = self.condition([""])
        u = self._uncond
        return Condition(*(t.expand(n, *t.shape[1:]) for t in (u.pooled, u.tokens, u.mask)))

    # ------------------------------------------------------------------------------------- model output

    def output(self, unet, x: torch.Tensor, t: torch.Tensor | int, cond: Condition) -> torch.Tensor:
        """The UNet's own prediction (epsilon or v, `prediction_type`), conditional, no guidance."""
        t = torch.as_tensor(t, device=x.device).expand(len(x)) if torch.as_tensor(t).ndim == 0 else t
        return unet(
            x, t, encoder_hidden_states=cond.tokens, class_labels=cond.pooled, encoder_attention_mask=cond.mask
        ).sample

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What `output` is trained to predict for x_t = sqrt(abar) x0 + sqrt(1 - abar) noise."""
        return prediction_target(self.train_scheduler, x0, noise, t)

    def to_eps(self, out: torch.Tensor, x: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """epsilon = sqrt(abar) v + sqrt(1 - abar) x_t for a v model; an epsilon model's output as it is."""
        if self.prediction_type == "epsilon":
            return out
        abar = self.alphas_cumprod[torch.as_tensor(t).cpu()].to(x.device)
        abar = abar.view(-1, 1, 1, 1) if abar.ndim else abar
        return abar.sqrt() * out + (1 - abar).sqrt() * x

    def guided_output(
        self, unet, x: torch.Tensor, t: torch.Tensor | int, cond: Condition, guidance_scale: float
    ) -> torch.Tensor:
        """Classifier-free guidance on the UNet's output, as the app computes it (`embedded_t2i.guided_output`)."""
        return guided_output(unet, x, t, cond.astuple(), self.unconditional(len(x)).astuple(), guidance_scale)

    # ------------------------------------------------------------------------------------ app sampler

    def app_scheduler(self):
        """The app's sampler, configured exactly as `EmbeddedTextToImage` configures it."""
        return new_sampler(self.folder)

    def app_sample(
        self,
        unet,
        noise: torch.Tensor,
        cond: Condition,
        *,
        grad_last_steps: int = 0,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
    ) -> torch.Tensor:
        """The app's sampling loop (`embedded_t2i.denoise`) from `noise` with `unet`, differentiable through its last
        `grad_last_steps` steps. Returns the final sample."""
        steps = num_inference_steps or self.config.num_inference_steps
        w = self.config.guidance_scale if guidance_scale is None else guidance_scale
        return denoise(
            unet,
            self.app_scheduler(),
            noise,
            cond.astuple(),
            self.unconditional(len(noise)).astuple(),
            steps,
            w,
            grad_last_steps,
        )
