"""Rewards for aligning the text-to-image model, behind one interface.

    reward(pixels [N,3,H,W] in [-1, 1], prompts: list[str]) -> tensor [N]      (higher is better)

differentiable with respect to the pixels where the reward allows it (`differentiable`), so that Focus-N-Fix can
backpropagate through sampling and take a saliency map; DPOK and reward-weighted fine-tuning only need values.
Every reward reports its own held-out accuracy (`held_out_accuracy()`, `metrics()`), and `spec` is the string
that rebuilds it (`make_reward(spec)`), written into each adapter's model card.

- `AlignmentReward`: prompt-image alignment as in Lee et al. 2023: an MLP on CLIP-style features (the embedded
  tier's image encoder and MiniLM, one 384-d space), trained with MSE on aligned / misaligned labels plus the
  auxiliary prompt-classification task (pasta.align.train_reward).
- `UserTypeReward`: the EM user model's utility for one user type (personalized alignment).
- `RednessReward`: a programmatic reward (redness of the garment region), for tests and smoke runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pasta.backends.image_encoder import ImageEncoder
from pasta.backends.minilm import TEXT_DIM, MiniLM, shared_minilm
from pasta.paths import EMBEDDED_DIR
from pasta.weights import weights_files

ALIGN_DIR = EMBEDDED_DIR / "align"
DEFAULT_ALIGNMENT_REWARD_DIR = ALIGN_DIR / "alignment_reward"


@runtime_checkable
class Reward(Protocol):
    name: str
    differentiable: bool

    @property
    def spec(self) -> str: ...

    def __call__(self, pixels: torch.Tensor, prompts: list[str]) -> torch.Tensor: ...

    def held_out_accuracy(self) -> float | None: ...

    def metrics(self) -> dict: ...


def _check_inputs(pixels: torch.Tensor, prompts: list[str]) -> None:
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 4 or pixels.shape[1] != 3:
        shape = tuple(pixels.shape) if isinstance(pixels, torch.Tensor) else type(pixels).__name__
        raise ValueError(f"pixels must be a tensor [N,3,H,W] in [-1, 1], got {shape}")
    if isinstance(prompts, str) or len(prompts) != len(pixels):
        raise ValueError(
            f"need one prompt per image: {len(pixels)} images, "
            f"{'a single string' if isinstance(prompts, str) else len(prompts)} prompts"
        )


class _TextCache:
    """MiniLM pooled embeddings, memoized per prompt (rewards see the same prompts every round)."""

    def __init__(self, text: MiniLM | None) -> None:
        self._text = text
        self.vectors: dict[str, torch.Tensor] = {}

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        missing = [p for p in dict.fromkeys(prompts) if p not in self.vectors]
        if missing:
            text = self._text or shared_minilm("cpu")  # the instance the diffusion model shares
            for p, v in zip(missing, text.embed(missing), strict=True):
                self.vectors[p] = torch.from_numpy(np.array(v, np.float32))
        return torch.stack([self.vectors[p] for p in prompts]) if prompts else torch.zeros(0, TEXT_DIM)


def _encode_pixels(encoder: ImageEncoder, pixels: torch.Tensor) -> torch.Tensor:
    size = encoder.config.image_size
    if pixels.shape[-2:] != (size, size):
        pixels = F.adaptive_avg_pool2d(pixels, size)
    device = next(encoder.parameters()).device
    return encoder(pixels.clamp(-1, 1).to(device))


# ------------------------------------------------------------------------------------------------ alignment


@dataclass
class AlignmentRewardConfig:
    """Architecture of the alignment reward's head, saved as config.json."""

    proj_dim: int = 128
    """Image and text embeddings are each projected to this width first."""
    hidden: int = 128
    """Width of the MLP on [image, text, image * text] projections."""
    dropout: float = 0.1


class AlignmentHead(nn.Module):
    """r(image embedding, text embedding): projections, their product (the CLIP-style interaction), a small MLP,
    plus the plain cosine of the shared space as a skip input. The output is linear, as in Lee et al.: about 1 for
    aligned and 0 for misaligned pairs on the data, and it keeps ranking (with a gradient) for images far from
    the data, such as an immature model's, where a sigmoid would saturate at 0 and give no signal."""

    def __init__(self, config: AlignmentRewardConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or AlignmentRewardConfig()
        self.image_proj = nn.Linear(TEXT_DIM, c.proj_dim)
        self.text_proj = nn.Linear(TEXT_DIM, c.proj_dim)
        self.mlp = nn.Sequential(
            nn.Linear(3 * c.proj_dim + 1, c.hidden),
            nn.GELU(),
            nn.Dropout(c.dropout),
            nn.Linear(c.hidden, c.hidden),
            nn.GELU(),
            nn.Linear(c.hidden, 1),
        )

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        i, t = self.image_proj(image_emb), self.text_proj(text_emb)
        cosine = (image_emb * text_emb).sum(-1, keepdim=True)
        return self.mlp(torch.cat([i, t, i * t, cosine], dim=-1)).squeeze(-1)


class AlignmentReward:
    """Learned prompt-image alignment (Lee et al. 2023) on the embedded tier's shared embedding space."""

    name = "alignment"
    differentiable = True

    def __init__(
        self,
        head: AlignmentHead,
        encoder: ImageEncoder,
        *,
        text: MiniLM | None = None,
        folder: str | Path | None = None,
        metrics: dict | None = None,
    ) -> None:
        self.head = head.eval().requires_grad_(False)
        self.encoder = encoder.eval().requires_grad_(False)
        self.text = _TextCache(text)
        self.folder = None if folder is None else Path(folder)
        self._metrics = metrics or {}

    @property
    def spec(self) -> str:
        return (
            "alignment"
            if self.folder is None or self.folder == DEFAULT_ALIGNMENT_REWARD_DIR
            else f"alignment={self.folder}"
        )

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return _encode_pixels(self.encoder, pixels)

    def score_embeddings(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        return self.head(image_emb, text_emb)

    def __call__(self, pixels: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        _check_inputs(pixels, prompts)
        image_emb = self.features(pixels)
        return self.head(image_emb, self.text(list(prompts)).to(image_emb.device))

    def held_out_accuracy(self) -> float | None:
        return self._metrics.get("held_out", {}).get("pairwise_accuracy")

    def metrics(self) -> dict:
        return {"reward": self.spec, **self._metrics}

    def save(self, folder: str | Path, metrics: dict | None = None) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.head.state_dict().items()}
        save_file(tensors, str(folder / "reward.safetensors"), metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(asdict(self.head.config), indent=2) + "\n")
        if metrics is not None:
            self._metrics = metrics
        (folder / "metrics.json").write_text(json.dumps(self._metrics, indent=2) + "\n")
        self.folder = folder

    @classmethod
    def load(
        cls,
        folder: str | Path | None = None,
        *,
        encoder_dir: str | Path | None = None,
        text: MiniLM | None = None,
        device: str = "cpu",
    ) -> AlignmentReward:
        from safetensors.torch import load_file

        folder = Path(folder) if folder else DEFAULT_ALIGNMENT_REWARD_DIR
        if not (folder / "reward.safetensors").exists() or not (folder / "config.json").exists():
            raise FileNotFoundError(
                f"no alignment reward at {folder} (need reward.safetensors and config.json): train it with "
                "`pasta align reward` or pass --reward alignment=<folder>"
            )
        head = AlignmentHead(AlignmentRewardConfig(**json.loads((folder / "config.json").read_text())))
        head.load_state_dict(load_file(str(folder / "reward.safetensors")))
        metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").exists() else {}
        encoder_dir = encoder_dir or metrics.get("image_encoder_dir")
        encoder = ImageEncoder.load(encoder_dir if encoder_dir and Path(encoder_dir).exists() else None, device)
        return cls(head.to(device), encoder, text=text, folder=folder, metrics=metrics)


# -------------------------------------------------------------------------------------------- personalized


class UserTypeReward:
    """Personalized alignment: the EM user model's utility u_k of one user type k for an image and its prompt,
    u_k([text embedding, image embedding]) (the same column features the user model was fitted on)."""

    name = "user-type"
    differentiable = True

    def __init__(
        self,
        user_model,
        type_index: int,
        encoder: ImageEncoder,
        *,
        text: MiniLM | None = None,
        folder: str | Path | None = None,
        held_out=None,
    ) -> None:
        if not 0 <= type_index < user_model.config.n_types:
            raise ValueError(
                f"user type {type_index} does not exist: the model has {user_model.config.n_types} "
                f"types (0..{user_model.config.n_types - 1})"
            )
        if user_model.n_features != 2 * TEXT_DIM:
            raise ValueError(
                f"the user model takes {user_model.n_features} features; this reward builds "
                f"{2 * TEXT_DIM} (text and image embeddings)"
            )
        self.user_model = user_model.eval().requires_grad_(False)
        self.type_index = type_index
        self.encoder = encoder.eval().requires_grad_(False)
        self.text = _TextCache(text)
        self.folder = None if folder is None else Path(folder)
        self.held_out = held_out
        self._accuracy: float | None = None

    @property
    def spec(self) -> str:
        return f"user-type={self.folder}#{self.type_index}"

    def __call__(self, pixels: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        _check_inputs(pixels, prompts)
        image_emb = _encode_pixels(self.encoder, pixels)
        x = torch.cat([self.text(list(prompts)).to(image_emb.device), image_emb], dim=-1)
        return self.user_model.utilities(x)[..., self.type_index]

    def held_out_accuracy(self) -> float | None:
        """Top-1 choice accuracy of u_k on held-out turns of the users whose posterior puts type k first (the
        `held_out` ChoiceData given at construction); None without held-out data or such users."""
        if self._accuracy is None and self.held_out is not None and len(self.held_out.X):
            data = self.held_out
            posterior = self.user_model.posterior(data)
            rows = posterior.argmax(1)[data.user] == self.type_index
            if rows.any():
                with torch.no_grad():
                    u = self.user_model.utilities(torch.as_tensor(data.X[rows]))[..., self.type_index]
                u = u.masked_fill(~torch.as_tensor(data.mask[rows]), -torch.inf)
                self._accuracy = float((u.argmax(1).numpy() == data.choice[rows]).mean())
        return self._accuracy

    def metrics(self) -> dict:
        files = weights_files(self.folder, "user_model") if self.folder is not None else None
        stored = json.loads(files[1].read_text()).get("metrics", {}) if files else {}
        return {"reward": self.spec, "held_out_choice_accuracy": self.held_out_accuracy(), "user_model_metrics": stored}

    @classmethod
    def load(
        cls,
        folder: str | Path,
        type_index: int = 0,
        *,
        encoder_dir: str | Path | None = None,
        text: MiniLM | None = None,
        held_out=None,
        device: str = "cpu",
    ) -> UserTypeReward:
        from pasta.policy.user_model import UserModel

        return cls(
            UserModel.load(folder),
            type_index,
            ImageEncoder.load(encoder_dir, device),
            text=text,
            folder=folder,
            held_out=held_out,
        )


# ------------------------------------------------------------------------------------------- programmatic


class RednessReward:
    """Redness of the centre: (R - (G + B) / 2) / 2 averaged over pixels with a centred Gaussian weight (sd a
    quarter of the side, where the attribute worlds put their subject), in [-1, 1]; ignores the prompt. Exactly
    differentiable, and its saliency is a centred blob; for tests and smoke runs. Its held-out accuracy is read on
    real images of `world` (its `PromptTask.colour_pairs`)."""

    name = "redness"
    differentiable = True
    spec = "redness"

    def __init__(self, world: str = "fashion") -> None:
        self.world = world
        self._accuracy: float | None = None

    def __call__(self, pixels: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        _check_inputs(pixels, prompts)
        r, g, b = pixels.clamp(-1, 1).unbind(1)
        h, w = pixels.shape[-2:]
        y = (torch.arange(h, dtype=pixels.dtype, device=pixels.device) - (h - 1) / 2) / (h / 4)
        x = (torch.arange(w, dtype=pixels.dtype, device=pixels.device) - (w - 1) / 2) / (w / 4)
        weight = torch.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / 2)
        return ((r - (g + b) / 2) / 2 * weight).sum(dim=(1, 2)) / weight.sum()

    def held_out_accuracy(self, n_pairs: int = 200, seed: int = 0) -> float | None:
        """Share of held-out pairs (the same real test image and attributes, red vs another colour) in which the
        red image scores higher; None when the world's data is not installed."""
        if self._accuracy is None:
            from pasta.worlds import load_prompt_task

            pairs = load_prompt_task(self.world).colour_pairs("red", n_pairs, seed)
            if pairs is None:
                return None
            red, other = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1 for x in pairs)
            prompts = [""] * n_pairs
            self._accuracy = float((self(red, prompts) > self(other, prompts)).float().mean())
        return self._accuracy

    def metrics(self) -> dict:
        return {
            "reward": self.spec,
            "held_out": {"pairwise_accuracy": self.held_out_accuracy()},
            "definition": "pairwise accuracy: red vs non-red versions of the same composed test image",
        }


# ------------------------------------------------------------------------------------------------- factory


def make_reward(spec: str, *, text: MiniLM | None = None, device: str = "cpu") -> Reward:
    """Build a reward from its spec: "alignment" | "alignment=DIR" | "user-type=DIR#K" | "redness"."""
    name, _, arg = spec.partition("=")
    if name == "alignment":
        return AlignmentReward.load(arg or None, text=text, device=device)
    if name == "redness":
        return RednessReward()
    if name == "user-type":
        folder, _, k = arg.partition("#")
        if not folder:
            raise ValueError("user-type reward needs a user model folder: --reward user-type=DIR#K")
        try:
            type_index = int(k or 0)
        except ValueError:
            raise ValueError(f"user type must be an integer index, got {k!r} in {spec!r}") from None
        return UserTypeReward.load(folder, type_index, text=text, device=device)
    raise ValueError(f"unknown reward {spec!r}: use alignment, alignment=DIR, user-type=DIR#K or redness")
