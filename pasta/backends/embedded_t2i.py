"""The embedded text-to-image model: a small diffusers `UNet2DConditionModel` trained by the project
(models/train_t2i.py) on the Fashion-MNIST attribute world, conditioned on MiniLM token states and the pooled
sentence embedding, sampled with UniPC (or DPM-Solver++) and classifier-free guidance on a 2-core CPU. Where the weights
folder holds a distilled-guidance adapter (`guidance_lora/`, models/distill_guidance.py), each sampling step runs
the UNet once instead of twice (the prompt's rows and the empty caption's): about half a turn's time.

The UNet works on a 2x2 space-to-depth view of the image (32x32x3 <-> 16x16x12, `pixel_unshuffle`): the same
pixels, rearranged, so the network runs at 16x16 and a turn of 16 images stays within a few seconds on CPU.
Weights live in the diffusers folder layout (`unet/`, `scheduler/`), so `from_pretrained` and peft LoRA
adapters work on it as on any diffusers UNet.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import get_args

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pasta import torch_thread
from pasta.backends.minilm import MAX_TOKENS, TEXT_DIM, MiniLM, shared_minilm
from pasta.config import Guidance, Sampler
from pasta.paths import EMBEDDED_DIR

DEFAULT_MODEL_DIR = EMBEDDED_DIR / "t2i"
WORLD_MODEL_DIRS = {"fashion": DEFAULT_MODEL_DIR, "emoji": EMBEDDED_DIR / "t2i_emoji"}
"""The shipped weights of each world; models/train_t2i.py writes there only when --out names the folder."""
GUIDANCE_ADAPTER_DIR = "guidance_lora"
"""Beside `unet/`: a LoRA that makes one forward give the guided output (models/distill_guidance.py)."""
SAMPLERS = get_args(Sampler)
"""unipc: the app's (as accurate at 6 steps as at 10); dpm-solver++: the earlier figures' and adapters'."""
GUIDANCE_MODES = get_args(Guidance)
"""auto: the distilled adapter where the folder has one for these weights (and no alignment adapter is loaded);
distilled: require it; cfg: classifier-free guidance, two rows per image per step."""


@dataclass
class EmbeddedT2IConfig:
    """Sampling settings saved beside the weights as `pasta_t2i.json`."""

    image_size: int = 32
    """Side of the generated image in pixels."""
    patch_size: int = 2
    """Space-to-depth factor between the image and the UNet's sample."""
    max_tokens: int = MAX_TOKENS
    """MiniLM token states given to cross-attention."""
    num_inference_steps: int = 15
    """Sampling steps of the evaluations (the app samples in fewer: `Settings.sampling_steps`)."""
    guidance_scale: float = 3.0
    """Classifier-free guidance weight."""
    display_size: int = 256
    """Side the app shows images at (smoothly resampled by `pasta.app.views.for_display`). `generate` returns the
    model's own pixels, which the exports and the log keep."""
    cpu_bfloat16: bool = True
    """On a CPU with native bfloat16 (AVX512-BF16/AMX), sample under bfloat16 autocast: 1.25x faster on 2 cores
    here. The images of a seed then differ slightly (mean 2/255 per pixel) from those of a CPU without it."""
    block_out_channels: tuple[int, ...] = (64, 128, 192)
    """The UNet's channels per level (`build_unet`; a trained folder's unet/config.json is what loading reads)."""
    world: str = "fashion"
    """The world the weights were trained on ("fashion": garments at 32 px; "emoji": emoji scenes at 64 px)."""

    @classmethod
    def load(cls, folder: Path) -> EmbeddedT2IConfig:
        path = Path(folder) / "pasta_t2i.json"
        if not path.exists():
            return cls()
        values = json.loads(path.read_text())
        if "block_out_channels" in values:
            values["block_out_channels"] = tuple(values["block_out_channels"])
        return cls(**values)

    @classmethod
    def for_world(cls, world: str) -> EmbeddedT2IConfig:
        """The architecture and resolution trained for a world: the emoji art is recognizable at 64 px, and a 4x4
        space-to-depth patch keeps the UNet at 16x16 as for the garments' 32 px."""
        if world == "fashion":
            return cls()
        if world == "emoji":
            return cls(image_size=64, patch_size=4, block_out_channels=(64, 128, 256), world="emoji")
        raise ValueError(f"unknown world {world!r}: 'fashion' or 'emoji'")

    def save(self, folder: Path) -> None:
        (Path(folder) / "pasta_t2i.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


def build_unet(config: EmbeddedT2IConfig | None = None):
    """The architecture trained by models/train_t2i.py (garments: 11.6M parameters; emoji scenes: 17.4M)."""
    from diffusers import UNet2DConditionModel

    config = config or EmbeddedT2IConfig()
    channels = 3 * config.patch_size**2
    return UNet2DConditionModel(
        sample_size=config.image_size // config.patch_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(config.block_out_channels),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=32,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=TEXT_DIM,
        norm_num_groups=32,
    )


def cpu_has_bfloat16(device: torch.device) -> bool:
    """A CPU whose oneDNN kernels run bfloat16 natively (elsewhere bfloat16 is emulated, and slower)."""
    return (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )


def build_train_scheduler(prediction_type: str = "v_prediction"):
    """The cosine noise schedule. v-prediction (Salimans & Ho 2022) by default: an epsilon model's x0 estimate at
    the first sampling steps divides its error by sqrt(alpha_bar) ~ 5e-5, which left a 2x2 checkerboard (the
    space-to-depth channels) in every sample; v keeps x0 well conditioned at every noise level."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type)


def prediction_target(scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the UNet learns to predict for x_t = scheduler.add_noise(x0, noise, t): the noise, or v."""
    return noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(x0, noise, t)


def to_patches(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    return F.pixel_unshuffle(images, patch_size)


def from_patches(sample: torch.Tensor, patch_size: int) -> torch.Tensor:
    return F.pixel_shuffle(sample, patch_size)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N,H,W,3] -> float [N,3,H,W] in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float [N,3,H,W] in [-1, 1] -> uint8 [N,H,W,3]."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def initial_noise(seeds: list[int], n_per_seed: int, shape: tuple[int, int, int]) -> torch.Tensor:
    """Noise for each (seed, image index): a column's images depend only on its seed, never on batching."""
    out = []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        out.append(torch.randn((n_per_seed, *shape), generator=g))
    return torch.cat(out)


def new_sampler(folder: Path, sampler: str = "unipc"):
    """The app's multistep solver (one of SAMPLERS) for the weights in `folder`. Pixel-space sampling: threshold
    x0 to the image range (else the cosine schedule's first steps divide by ~0 and blow up), and start from t = T
    where the model was trained on pure noise. A fresh one per sampling loop: its timestep state is per loop."""
    from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    kind = UniPCMultistepScheduler if sampler == "unipc" else DPMSolverMultistepScheduler
    return kind.from_pretrained(
        Path(folder) / "scheduler", thresholding=True, sample_max_value=1.0, timestep_spacing="trailing"
    )


def guided_output(
    unet, x: torch.Tensor, t: torch.Tensor | int, cond: tuple, uncond: tuple | None, guidance_scale: float
) -> torch.Tensor:
    """Classifier-free guidance on the UNet's output (epsilon or v): o_u + w (o_c - o_u), one batched forward of 2N
    rows. `cond`, `uncond`: (pooled, tokens, mask) of N rows each. Guidance is affine, so on epsilon it equals
    guidance on v converted to epsilon. `uncond` None: a guidance-distilled UNet, whose own output is the guided
    one (N rows, `guidance_scale` unused)."""
    t = torch.as_tensor(t, device=x.device)
    if uncond is None:
        pooled, tokens, mask = cond
        out = unet(
            x,
            t.expand(len(x)) if t.ndim == 0 else t,
            encoder_hidden_states=tokens,
            class_labels=pooled,
            encoder_attention_mask=mask,
        )
        return out.sample.float()
    pooled, tokens, mask = (torch.cat([u, c]) for u, c in zip(uncond, cond))
    t = t.expand(2 * len(x)) if t.ndim == 0 else torch.cat([t, t])
    out = unet(torch.cat([x, x]), t, encoder_hidden_states=tokens, class_labels=pooled, encoder_attention_mask=mask)
    out_uncond, out_cond = out.sample.float().chunk(2)  # the solver's arithmetic stays in float32 under autocast
    return out_uncond + guidance_scale * (out_cond - out_uncond)


def denoise(
    unet,
    scheduler,
    noise: torch.Tensor,
    cond: tuple,
    uncond: tuple,
    num_inference_steps: int,
    guidance_scale: float,
    grad_last_steps: int = 0,
) -> torch.Tensor:
    """The sampling loop, visible, and the only one: the app's images and the alignment algorithms' samples come
    from here. Differentiable through the last `grad_last_steps` steps (0: none; DRaFT-K style truncated
    backpropagation for Focus-N-Fix)."""
    scheduler.set_timesteps(num_inference_steps)
    x = noise * scheduler.init_noise_sigma
    timesteps = list(scheduler.timesteps)
    for i, t in enumerate(timesteps):
        if torch_thread.preempted():  # work done ahead of time, and someone is waiting: give way at once
            raise torch_thread.Preempted("rendering gave way to interactive work")
        with torch.set_grad_enabled(len(timesteps) - i <= grad_last_steps):
            out = guided_output(unet, scheduler.scale_model_input(x, t), t, cond, uncond, guidance_scale)
            x = scheduler.step(out, t, x).prev_sample
    return x


def weights_fingerprint(unet_folder: Path) -> str:
    """sha256 (first 16 hex digits) of the UNet weights file: an adapter records the base it was trained on."""
    files = sorted(Path(unet_folder).glob("*.safetensors")) or sorted(Path(unet_folder).glob("*.bin"))
    if not files:
        raise FileNotFoundError(f"no weights file in {unet_folder}")
    digest = hashlib.sha256()
    with open(files[0], "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def distilled_guidance_unet(folder: Path, adapter: Path | None, guidance_scale: float, required: bool):
    """The UNet of `folder` with a distilled-guidance LoRA merged in (no per-step cost; `adapter` None: the one in
    `folder/guidance_lora`), or None (with a warning when `required` is False) where there is no adapter, or it was
    distilled from other weights or at another guidance scale than the folder's sampler uses: its output would not
    be what those weights give."""
    import warnings

    from diffusers import UNet2DConditionModel
    from peft import PeftModel

    adapter = Path(adapter) if adapter else Path(folder) / GUIDANCE_ADAPTER_DIR
    if not (adapter / "adapter_config.json").exists():
        if required:
            raise FileNotFoundError(
                f"guidance='distilled' but {adapter} holds no adapter: distil one with "
                f"`python models/distill_guidance.py --teacher {folder} --out {adapter}`"
            )
        return None
    card = json.loads((adapter / "model_card.json").read_text()) if (adapter / "model_card.json").exists() else {}
    problem = None
    if card.get("base_model", {}).get("unet_sha256_16") != weights_fingerprint(Path(folder) / "unet"):
        problem = f"{adapter} was distilled from other weights than {folder}/unet"
    elif card.get("guidance_scale") != guidance_scale:
        problem = f"{adapter} was distilled at guidance {card.get('guidance_scale')}, the sampler uses {guidance_scale}"
    if problem and required:
        raise ValueError(problem)
    if problem:
        warnings.warn(f"{problem}: sampling with classifier-free guidance instead", stacklevel=3)
        return None
    base = UNet2DConditionModel.from_pretrained(Path(folder) / "unet", dtype=torch.float32)
    return PeftModel.from_pretrained(base, str(adapter)).merge_and_unload().eval()


class EmbeddedTextToImage:
    """`TextToImage` on the project's own weights; deterministic for a seed, loads an optional LoRA adapter."""

    name = "embedded"

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        adapter: str | Path | None = None,
        text: MiniLM | None = None,
        device: str = "cpu",
        bfloat16: bool | None = None,
        num_inference_steps: int | None = None,
        guidance: str = "auto",
        guidance_adapter: str | Path | None = None,
        sampler: str = "unipc",
    ) -> None:
        """`bfloat16`: sample under bfloat16 autocast (None: as `pasta_t2i.json` says, where the CPU has it);
        `num_inference_steps`: sampling steps (None: as `pasta_t2i.json` says); `guidance`: one of
        GUIDANCE_MODES; `guidance_adapter`: a distilled-guidance adapter other than the folder's own (e.g. a run of
        models/distill_guidance.py before it ships); `sampler`: one of SAMPLERS."""
        from diffusers import UNet2DConditionModel

        folder = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        if not (folder / "unet" / "config.json").exists():
            raise FileNotFoundError(
                f"no embedded text-to-image weights at {folder}/unet: train them with "
                "`python models/train_t2i.py` or point --t2i-model-dir (pasta app) or --model-dir (pasta align) at "
                "a folder that has them"
            )
        self.folder = folder
        self.config = EmbeddedT2IConfig.load(folder)
        if num_inference_steps is not None:
            if num_inference_steps < 1:
                raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
            self.config = replace(self.config, num_inference_steps=int(num_inference_steps))
        self.sampler = sampler
        self.scheduler = new_sampler(folder, sampler)  # refuses an unknown sampler before any weights load
        if guidance not in GUIDANCE_MODES:
            raise ValueError(f"guidance must be one of {', '.join(GUIDANCE_MODES)}, got {guidance!r}")
        self.device = torch.device(device)
        self.distilled_unet = None
        if guidance != "cfg":
            self.distilled_unet = distilled_guidance_unet(
                folder, guidance_adapter, self.config.guidance_scale, guidance == "distilled"
            )
            if self.distilled_unet is not None:
                self.distilled_unet.to(self.device)
        self.base_unet = UNet2DConditionModel.from_pretrained(folder / "unet", dtype=torch.float32)
        self.base_unet.to(self.device).eval()
        self.unet = self.base_unet
        self.text = text or shared_minilm(device)
        self._lock = threading.Lock()  # the scheduler's timestep state is shared: one sampling loop at a time
        self._uncond = None
        wanted = self.config.cpu_bfloat16 if bfloat16 is None else bfloat16
        self.bfloat16 = bool(wanted) and cpu_has_bfloat16(self.device)
        self.adapter = None
        if adapter:
            self.load_adapter(adapter)

    @property
    def guidance(self) -> str:
        """How this model samples now: "distilled" (one forward a step) or "cfg". An alignment adapter was trained
        and measured on the base weights under classifier-free guidance, so loading one samples that way."""
        return "distilled" if self.distilled_unet is not None and self.adapter is None else "cfg"

    def load_adapter(self, path: str | Path) -> None:
        """Attach a peft LoRA adapter (e.g. an aligned model from `pasta align`) saved with `save_pretrained`;
        a second call replaces the first adapter rather than stacking on it. Sampling then uses classifier-free
        guidance (`guidance`)."""
        from peft import PeftModel

        path = Path(path)
        if not (path / "adapter_config.json").exists():
            raise FileNotFoundError(f"{path} is not a LoRA adapter folder (no adapter_config.json)")
        self._warn_if_other_base(path)
        with self._lock:
            if self.unet is not self.base_unet:
                self.base_unet = self.unet.unload()  # peft: the base model without the LoRA layers
            self.unet = PeftModel.from_pretrained(self.base_unet, str(path)).eval()
            self.adapter = str(path)

    def _warn_if_other_base(self, path: Path) -> None:
        """Adapters from `pasta align` record the base weights they were trained on (model_card.json); LoRA deltas
        on other weights (e.g. after the base model was retrained) are not what was measured: say so."""
        import warnings

        card = path / "model_card.json"
        if not card.exists():
            return
        trained_on = json.loads(card.read_text()).get("base_model", {}).get("unet_sha256_16")
        if trained_on:
            here = weights_fingerprint(self.folder / "unet")
            if here != trained_on:
                warnings.warn(
                    f"the adapter {path} was trained on other base weights (unet {trained_on}) than "
                    f"{self.folder} (unet {here}); its effect was measured on those",
                    stacklevel=3,
                )

    def condition(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(t.to(self.device) for t in self.text.encode(prompts, self.config.max_tokens))

    def unconditional(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._uncond is None:
            self._uncond = self.condition([""])
        return tuple(t.expand(n, *t.shape[1:]) for t in self._uncond)

    def sample_tensor(self, prompts: list[str], seeds: list[int], n_per_prompt: int = 1) -> torch.Tensor:
        """float [len(prompts)*n_per_prompt, 3, H, W] in [-1, 1], grouped by prompt."""
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds: give one seed per prompt")
        c = self.config
        side = c.image_size // c.patch_size
        noise = initial_noise(seeds, n_per_prompt, (3 * c.patch_size**2, side, side)).to(self.device)
        cond = tuple(t.repeat_interleave(n_per_prompt, 0) for t in self.condition(prompts))
        bf16 = torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16)
        with self._lock, bf16, torch.inference_mode():
            distilled = self.guidance == "distilled"
            x = denoise(
                self.distilled_unet if distilled else self.unet,
                self.scheduler,
                noise,
                cond,
                None if distilled else self.unconditional(len(noise)),
                c.num_inference_steps,
                c.guidance_scale,
            )
        return from_patches(x, c.patch_size)

    def generate(self, prompts: list[str], seeds: list[int], n_per_prompt: int = 4) -> list[list[Image.Image]]:
        if not prompts:
            return []
        pixels = tensor_to_images(self.sample_tensor(prompts, seeds, n_per_prompt))
        images = [Image.fromarray(p) for p in pixels]
        return [images[i * n_per_prompt : (i + 1) * n_per_prompt] for i in range(len(prompts))]
