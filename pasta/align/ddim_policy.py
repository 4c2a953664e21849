"""A DDIM step with eta > 0 as a Gaussian policy (DPOK, Fan et al. 2023; DDPO, Black et al. 2023).

The state is (x_t, t, prompt), the action is x_{t-1}, and the policy is the DDIM update with noise:

    x0_hat   = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)              (clipped to the image range)
    sigma_t2 = eta^2 (1 - abar_prev) / (1 - abar_t) (1 - abar_t / abar_prev)
    mean     = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma_t2) eps_hat
    x_{t-1} ~ N(mean, sigma_t2 I)

eps_hat is the classifier-free-guided prediction, in sampling and in the update alike. After clipping x0_hat,
eps_hat is re-derived from it (as diffusers' DDIM does with `use_clipped_model_output`), so the pair stays
consistent; this matters on the embedded model's cosine schedule, whose first step has abar_T ~ 0. Log-densities
are averaged over channels and pixels, as the reference implementations do. The last step (abar_prev = 1) has
sigma = 0: it is deterministic and carries no log-probability, so policy gradients use the other steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pasta.align.diffusion import Condition, EmbeddedDiffusion


def ddim_timesteps(num_inference_steps: int, num_train_timesteps: int = 1000) -> list[int]:
    """Trailing spacing (the first step at t = T - 1, where the model was trained on pure noise), as the app."""
    if not 1 <= num_inference_steps <= num_train_timesteps:
        raise ValueError(f"num_inference_steps must be in [1, {num_train_timesteps}], got {num_inference_steps}")
    ratio = num_train_timesteps / num_inference_steps
    return [int(round(num_train_timesteps - i * ratio)) - 1 for i in range(num_inference_steps)]


@dataclass
class DDIMPolicy:
    """The sampler of one model as a stochastic policy; the UNet is an argument so the same policy object serves
    the LoRA-adapted model, the frozen base and the old policy of a replay buffer."""

    model: EmbeddedDiffusion
    num_inference_steps: int = 50
    eta: float = 1.0
    guidance_scale: float = 7.5
    clip_sample: float = 1.0
    """x0_hat is clipped to [-clip_sample, clip_sample]; 0 disables clipping."""

    def __post_init__(self) -> None:
        if self.eta <= 0:
            raise ValueError(f"eta must be > 0 for a stochastic (Gaussian) policy, got {self.eta}")
        self.timesteps = ddim_timesteps(self.num_inference_steps, self.model.num_train_timesteps)
        abar = self.model.alphas_cumprod
        self.abar_t = torch.stack([abar[t] for t in self.timesteps])
        prev = self.timesteps[1:] + [-1]
        self.abar_prev = torch.stack([abar[t] if t >= 0 else torch.tensor(1.0) for t in prev])
        var = self.eta**2 * (1 - self.abar_prev) / (1 - self.abar_t) * (1 - self.abar_t / self.abar_prev)
        self.sigma = var.clamp_min(0).sqrt()

    @property
    def stochastic_steps(self) -> list[int]:
        """Indices of steps with sigma > 0 (all but the last)."""
        return [i for i in range(self.num_inference_steps) if float(self.sigma[i]) > 0]

    def mean(self, unet, x_t: torch.Tensor, step: int | torch.Tensor, cond: Condition) -> torch.Tensor:
        """The policy mean at step index `step` (an int, or a tensor [N] of step indices, one per row)."""
        step = torch.as_tensor(step)
        t = torch.as_tensor(self.timesteps)[step]
        return self.mean_from_output(x_t, self.model.guided_output(unet, x_t, t, cond, self.guidance_scale), step)

    def mean_from_output(self, x_t: torch.Tensor, out: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
        """The mean from the (guided) UNet output in the model's own parametrization. For v, x0 and eps come
        straight from v: going through eps would divide float32 rounding by sqrt(abar) ~ 5e-5 at the first step."""
        if self.model.prediction_type == "epsilon":
            return self.mean_from_eps(x_t, out, step)
        abar_t = self._at(self.abar_t, step)
        x0 = abar_t.sqrt() * x_t - (1 - abar_t).sqrt() * out
        eps = abar_t.sqrt() * out + (1 - abar_t).sqrt() * x_t
        return self._mean(x_t, x0, eps, step)

    def mean_from_eps(self, x_t: torch.Tensor, eps: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
        abar_t = self._at(self.abar_t, step)
        return self._mean(x_t, (x_t - (1 - abar_t).sqrt() * eps) / abar_t.sqrt(), eps, step)

    @staticmethod
    def _at(values: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
        step = torch.as_tensor(step)
        return values[step].view((-1, 1, 1, 1) if step.ndim else ())

    def _mean(self, x_t: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
        abar_t, abar_prev, sigma = (self._at(v, step) for v in (self.abar_t, self.abar_prev, self.sigma))
        if self.clip_sample > 0:
            x0 = x0.clamp(-self.clip_sample, self.clip_sample)
            eps = (x_t - abar_t.sqrt() * x0) / (1 - abar_t).sqrt()
        return abar_prev.sqrt() * x0 + (1 - abar_prev - sigma**2).clamp_min(0).sqrt() * eps

    def log_prob(self, x_prev: torch.Tensor, mean: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
        """[N]: Gaussian log-density of x_prev under N(mean, sigma^2 I), averaged over channels and pixels."""
        step = torch.as_tensor(step)
        sigma = self.sigma[step].view((-1, 1, 1, 1) if step.ndim else ())
        if bool((sigma <= 0).any()):
            raise ValueError("log_prob at a deterministic step (sigma = 0): use `stochastic_steps`")
        lp = -((x_prev - mean) ** 2) / (2 * sigma**2) - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
        return lp.mean(dim=(1, 2, 3))

    def kl_to(self, mean: torch.Tensor, mean_ref: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
        """[N]: KL(N(mean, s^2) || N(mean_ref, s^2)) per dimension (averaged over channels and pixels)."""
        step = torch.as_tensor(step)
        sigma = self.sigma[step].view((-1, 1, 1, 1) if step.ndim else ())
        return ((mean - mean_ref) ** 2 / (2 * sigma**2)).mean(dim=(1, 2, 3))

    @torch.no_grad()
    def rollout(
        self, unet, cond: Condition, noise: torch.Tensor, generator: torch.Generator | None = None, ref_unet=None
    ) -> Trajectory:
        """Sample x_T -> x_0 with the policy of `unet`, recording every state and the log-probability of every
        stochastic action; with `ref_unet` (a UNet, or "base" for a peft `unet` with its adapter disabled), also the
        per-step KL to that model's policy along the way."""
        x = noise
        states, log_probs, kls = [x], [], []
        for i in range(self.num_inference_steps):
            mean = self.mean(unet, x, i, cond)
            sigma = self.sigma[i]
            if sigma > 0:
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
                x = mean + sigma * z
                log_probs.append(self.log_prob(x, mean, i))
                if ref_unet == "base":  # the peft model `unet` with its adapter switched off
                    with unet.disable_adapter():
                        kls.append(self.kl_to(mean, self.mean(unet, states[-1], i, cond), i))
                elif ref_unet is not None:
                    kls.append(self.kl_to(mean, self.mean(ref_unet, states[-1], i, cond), i))
            else:
                x = mean
            states.append(x)
        return Trajectory(
            states=torch.stack(states),
            log_probs=torch.stack(log_probs) if log_probs else torch.zeros(0, len(noise)),
            kl=torch.stack(kls) if kls else None,
        )


@dataclass
class Trajectory:
    """One batch of sampled chains: states [S+1, N, C, H, W] from x_T to x_0, log_probs [S', N] of the stochastic
    steps (S' = S - 1 with eta > 0), kl [S', N] per step to a reference policy when asked for."""

    states: torch.Tensor
    log_probs: torch.Tensor
    kl: torch.Tensor | None = None

    @property
    def final(self) -> torch.Tensor:
        return self.states[-1]


@torch.no_grad()
def estimate_kl(
    model: EmbeddedDiffusion,
    peft_unet,
    prompts: list[str],
    images_per_prompt: int = 2,
    num_inference_steps: int = 20,
    eta: float = 1.0,
    guidance_scale: float | None = None,
    seed: int = 0,
) -> dict:
    """KL(adapted || base) of the sampling chains, estimated on chains of the adapted model: by the chain rule the
    sum over steps of E[KL(pi_theta(.|x_t) || pi_base(.|x_t))]; each Gaussian KL is averaged over dimensions, as
    the log-probabilities are."""
    w = model.config.guidance_scale if guidance_scale is None else guidance_scale
    policy = DDIMPolicy(model, num_inference_steps, eta, w)
    cond = model.condition(list(prompts)).repeat_interleave(images_per_prompt)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((len(cond), *model.sample_shape), generator=generator)
    trajectory = policy.rollout(peft_unet, cond, noise, generator, ref_unet="base")
    per_chain = trajectory.kl.sum(0)
    return {
        "trajectory_kl_per_dim": float(per_chain.mean()),
        "std": float(per_chain.std()) if len(per_chain) > 1 else 0.0,
        "chains": len(per_chain),
        "num_inference_steps": num_inference_steps,
        "eta": eta,
        "guidance_scale": w,
        "definition": "sum over stochastic DDIM steps of the per-dimension Gaussian KL between the adapted and "
        "base policies, on chains sampled from the adapted model",
    }
