"""DPOK: online reinforcement learning for diffusion models with KL regularization (Fan et al., NeurIPS 2023),
as a LoRA adapter on the UNet's attention projections. One file, top to bottom.

Each round:
1. Roll out the current policy (DDIM with eta > 0, pasta.align.ddim_policy) for a batch of prompts, recording every
   state x_t, action x_{t-1} and log-probability; score the final images with the reward R.
2. Fit the value baseline V(x_t, prompt, t) (an MLP on the flattened sample, the prompt's text embedding and a
   per-step embedding) by MSE to R, on transitions from the replay buffer (both in pasta.align.replay).
3. Take policy gradient steps on random (trajectory, step) transitions of the buffer:

       loss = -alpha * A * clamp(pi_theta(x_{t-1} | x_t) / pi_old(x_{t-1} | x_t), 1 - c, 1 + c)
              + beta * mean((eps_theta(x_t) - eps_base(x_t))^2),        A = R - V(x_t, prompt, t)

   The clamp zeroes the gradient once the ratio leaves the band, so replayed transitions act almost on-policy. The
   KL term compares the guided predictions of the adapted UNet and the frozen base (the same UNet with the adapter
   disabled), an upper bound, up to a per-step weight, of the KL between the two policies' chains.

Defaults are the paper's multi-prompt setting (`DPOKConfig()`); `DPOKConfig.embedded()` is the preset for the
project's small CPU model (the app's 3.0 guidance, 20 steps, a larger learning rate for a minutes-long budget).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pasta.align.adapters import LoraSettings, add_lora, save_adapter, trainable_parameters
from pasta.align.ddim_policy import DDIMPolicy, estimate_kl
from pasta.align.diffusion import EmbeddedDiffusion
from pasta.align.replay import ReplayBuffer, Transitions, ValueNet
from pasta.align.rewards import Reward
from pasta.console import progress_bar


@dataclass
class DPOKConfig:
    """DPOK hyper-parameters; defaults from the paper and its reference code unless marked as a project choice."""

    num_inference_steps: int = 50
    """DDIM steps of the policy (DPOK: 50)."""
    eta: float = 1.0
    """DDIM noise scale; > 0 makes each step a Gaussian policy (DPOK: 1.0)."""
    guidance_scale: float = 7.5
    """Classifier-free guidance, in sampling and in the update (DPOK: 7.5)."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """LoRA on to_q/to_k/to_v/to_out.0 (DPOK: rank 4)."""
    lr: float = 1e-5
    """Adam learning rate of the LoRA weights (DPOK: 1e-5)."""
    grad_clip: float = 0.1
    """Gradient norm clip (DPOK: 0.1)."""
    reward_weight: float = 1000.0
    """alpha, the policy-gradient weight (DPOK multi-prompt: 1000; single prompt: 10)."""
    kl_weight: float = 0.1
    """beta, the KL weight (DPOK multi-prompt: 0.1; single prompt: 0.01)."""
    ratio_clip: float = 1e-4
    """Half-width c of the band the importance ratio is clamped to (DPOK: 1e-4)."""
    prompts_per_round: int = 4
    """Distinct prompts rolled out per round (project choice)."""
    images_per_prompt: int = 4
    """Images per prompt per round; 4 x 4 = 16 images per round (project choice)."""
    policy_steps: int = 5
    """Policy gradient steps per round (project choice)."""
    policy_batch: int = 16
    """Transitions (trajectory, step) per policy gradient step (project choice)."""
    value_steps: int = 5
    """Value-baseline steps per round (project choice)."""
    value_batch: int = 128
    """Transitions per value step (project choice)."""
    value_lr: float = 1e-3
    """Adam learning rate of the value baseline (project choice)."""
    value_hidden: int = 256
    """Width of the value MLP (project choice)."""
    prompt_baseline: bool = False
    """Subtract the mean reward of the same prompt's images of the same round instead of V (DDPO's per-prompt
    baseline, without its std scaling). Off in the paper; on in the embedded preset, whose few dozen rounds are
    too few for V to learn per-prompt values (V is still fitted and logged)."""
    buffer_size: int = 64
    """Trajectories kept in the replay buffer, newest first (project choice)."""
    rounds: int = 1000
    """Maximum sampling rounds."""
    minutes: float = math.inf
    """Stop after this many minutes of wall time (the round in progress finishes)."""
    save_every: int = 0
    """Save the adapter every this many rounds (0: only at the end)."""
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "num_inference_steps": self.num_inference_steps >= 2,
            "eta": self.eta > 0,
            "lr": self.lr > 0,
            "grad_clip": self.grad_clip > 0,
            "reward_weight": self.reward_weight >= 0,
            "kl_weight": self.kl_weight >= 0,
            "ratio_clip": 0 < self.ratio_clip < 1,
            "prompts_per_round": self.prompts_per_round >= 1,
            "images_per_prompt": self.images_per_prompt >= 1,
            "policy_steps": self.policy_steps >= 0,
            "policy_batch": self.policy_batch >= 1,
            "value_steps": self.value_steps >= 0,
            "value_batch": self.value_batch >= 1,
            "buffer_size": self.buffer_size >= 1,
            "rounds": self.rounds >= 1,
            "minutes": self.minutes > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ValueError(
                f"invalid DPOK config: {values} (steps >= 2, eta/lr/grad_clip > 0, 0 < ratio_clip < 1, "
                "weights >= 0, sizes >= 1)"
            )

    @classmethod
    def embedded(cls, **overrides) -> DPOKConfig:
        """The project's preset for the embedded 32x32 CPU model: the app's guidance (3.0), 20 DDIM steps, a learning
        rate for a budget of minutes rather than GPU-days, and the per-prompt baseline (see `prompt_baseline`)."""
        preset = dict(
            num_inference_steps=20, guidance_scale=3.0, lr=3e-4, grad_clip=1.0, policy_steps=8, prompt_baseline=True
        )
        return replace(cls(), **{**preset, **overrides})


TRAINER_STATE = "trainer_state.pt"
RESUMABLE_FIELDS = ("rounds", "minutes", "save_every")
"""Config fields a resumed run may change; any other difference means a different experiment."""


class DPOK:
    """The trainer: owns the LoRA-adapted UNet (`self.unet`, a peft model over the base), the value baseline and
    the replay buffer. `train()` runs rounds until the budget ends; each piece is a method for tests to call.

    Every save also writes `trainer_state.pt` beside the adapter (LoRA and value weights, both optimizers, the replay
    buffer, the random states and the history), so `resume(folder)` continues a run exactly where it stopped."""

    def __init__(self, model: EmbeddedDiffusion, reward: Reward, prompts: list[str], config: DPOKConfig | None = None):
        if not prompts:
            raise ValueError("DPOK needs at least one training prompt")
        self.model, self.reward, self.prompts = model, reward, list(prompts)
        self.config = c = config or DPOKConfig()
        torch.manual_seed(c.seed)
        self.generator = torch.Generator().manual_seed(c.seed)
        self.rng = np.random.default_rng(c.seed)
        self.unet = add_lora(model.unet, c.lora)
        self.policy = DDIMPolicy(model, c.num_inference_steps, c.eta, c.guidance_scale)
        numel = int(np.prod(model.sample_shape))
        text_dim = model.condition([""]).pooled.shape[1]
        self.value = ValueNet(numel, text_dim, c.num_inference_steps, c.value_hidden)
        self.optimizer = torch.optim.Adam(trainable_parameters(self.unet), lr=c.lr)
        self.value_optimizer = torch.optim.Adam(self.value.parameters(), lr=c.value_lr)
        self.buffer = ReplayBuffer(c.buffer_size, self.policy.stochastic_steps)
        self.history: list[dict] = []
        self.rounds_done = 0
        self.images_seen = 0
        self.seconds_before = 0.0
        """Training seconds of the runs this one resumed."""

    # ------------------------------------------------------------------------------------------- rollout

    @torch.no_grad()
    def rollout(self, prompts: list[str] | None = None) -> dict:
        """Sample one round of images with the current policy, score them and add them to the buffer."""
        c = self.config
        if prompts is None:
            picks = self.rng.choice(
                len(self.prompts), c.prompts_per_round, replace=len(self.prompts) < c.prompts_per_round
            )
            prompts = [self.prompts[int(i)] for i in picks for _ in range(c.images_per_prompt)]
        cond = self.model.condition(prompts)
        noise = torch.randn((len(prompts), *self.model.sample_shape), generator=self.generator)
        self.unet.eval()
        trajectory = self.policy.rollout(self.unet, cond, noise, self.generator)
        rewards = self.reward(self.model.to_pixels(trajectory.final), prompts).detach().float().cpu()
        self.buffer.add(trajectory.states, trajectory.log_probs, rewards, prompts)
        self.images_seen += len(prompts)
        return {"prompts": prompts, "trajectory": trajectory, "rewards": rewards}

    # ---------------------------------------------------------------------------------------------- value

    def update_value(self) -> float:
        c = self.config
        losses = []
        for _ in range(c.value_steps):
            batch = self.buffer.sample(c.value_batch, self.generator)
            text = self.model.condition(batch.prompts).pooled
            loss = F.mse_loss(self.value(batch.x_t, text, batch.step), batch.reward)
            self.value_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.value_optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses)) if losses else math.nan

    # --------------------------------------------------------------------------------------------- policy

    def policy_loss(self, batch: Transitions) -> tuple[torch.Tensor, dict]:
        """The DPOK loss on a minibatch of transitions, and its parts (ratio, advantage, KL) for logging."""
        c = self.config
        cond = self.model.condition(batch.prompts)
        t = torch.as_tensor(self.policy.timesteps)[batch.step]
        out = self.model.guided_output(self.unet, batch.x_t, t, cond, c.guidance_scale)
        mean = self.policy.mean_from_output(batch.x_t, out, batch.step)
        log_prob = self.policy.log_prob(batch.x_prev, mean, batch.step)
        ratio = torch.exp(log_prob - batch.log_prob_old)
        with torch.no_grad():
            with self.unet.disable_adapter():
                out_base = self.model.guided_output(self.unet, batch.x_t, t, cond, c.guidance_scale)
            if c.prompt_baseline:
                advantage = batch.prompt_advantage
            else:
                advantage = batch.reward - self.value(batch.x_t, cond.pooled, batch.step)
        clipped = torch.clamp(ratio, 1 - c.ratio_clip, 1 + c.ratio_clip)
        # DPOK's KL bound is in epsilon: for a v model eps - eps_base = sqrt(abar) (v - v_base)
        kl_reg = (self.model.to_eps(out, batch.x_t, t) - self.model.to_eps(out_base, batch.x_t, t)).pow(2)
        kl_reg = kl_reg.mean(dim=(1, 2, 3))
        loss = (-c.reward_weight * advantage * clipped + c.kl_weight * kl_reg).mean()
        with torch.no_grad():
            mean_base = self.policy.mean_from_output(batch.x_t, out_base, batch.step)
            kl_step = self.policy.kl_to(mean.detach(), mean_base, batch.step)
        parts = {
            "ratio": ratio.detach(),
            "advantage": advantage,
            "kl_regularizer": kl_reg.detach(),
            "kl_per_step": kl_step,
            "in_band": ((ratio - 1).abs() <= c.ratio_clip).float().mean().detach(),
        }
        return loss, parts

    def update_policy(self, newest: int | None = None) -> dict:
        c = self.config
        self.unet.train()
        logs = []
        for _ in range(c.policy_steps):
            batch = self.buffer.sample(c.policy_batch, self.generator, newest)
            loss, parts = self.policy_loss(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable_parameters(self.unet), c.grad_clip)
            self.optimizer.step()
            logs.append(
                {
                    "loss": loss.item(),
                    "ratio_mean": float(parts["ratio"].mean()),
                    "in_band": float(parts["in_band"]),
                    "kl_regularizer": float(parts["kl_regularizer"].mean()),
                    "kl_per_step": float(parts["kl_per_step"].mean()),
                }
            )
        self.unet.eval()
        return {k: float(np.mean([log[k] for log in logs])) for k in logs[0]} if logs else {}

    # ---------------------------------------------------------------------------------------------- loop

    def round(self) -> dict:
        t0 = time.perf_counter()
        out = self.rollout()
        t1 = time.perf_counter()
        value_loss = self.update_value()
        policy = self.update_policy()
        t2 = time.perf_counter()
        self.rounds_done += 1
        n_steps = len(self.policy.stochastic_steps)
        log = {
            "round": self.rounds_done,
            "reward_mean": float(out["rewards"].mean()),
            "reward_std": float(out["rewards"].std()),
            "value_loss": value_loss,
            **policy,
            "kl_trajectory": policy.get("kl_per_step", math.nan) * n_steps,
            "sample_seconds": t1 - t0,
            "update_seconds": t2 - t1,
            "round_seconds": t2 - t0,
        }
        self.history.append(log)
        return log

    def train(self, out: str | Path | None = None, progress: bool = True, card: dict | None = None) -> dict:
        c = self.config
        start = time.perf_counter()
        elapsed = lambda: self.seconds_before + time.perf_counter() - start  # noqa: E731
        bar = progress_bar(total=c.rounds, initial=self.rounds_done, desc="dpok", disable=not progress)
        while self.rounds_done < c.rounds and time.perf_counter() - start < c.minutes * 60:
            log = self.round()
            bar.update(1)
            bar.set_postfix(reward=f"{log['reward_mean']:.3f}", kl=f"{log['kl_trajectory']:.4f}")
            if out and c.save_every and self.rounds_done % c.save_every == 0:
                self.save(out, elapsed(), card)
        bar.close()
        summary = self.summary(elapsed())
        if out:
            self.save(out, summary["train_seconds"], card)
        return summary

    # ---------------------------------------------------------------------------------------- checkpoint

    def config_json(self) -> dict:
        """The config as JSON values (paths as strings): what the model card and the trainer state record."""
        return json.loads(json.dumps(asdict(self.config), default=str))

    def trainer_state(self, seconds: float) -> dict:
        from peft import get_peft_model_state_dict

        return {
            "config": self.config_json(),
            "lora": get_peft_model_state_dict(self.unet),
            "value": self.value.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "value_optimizer": self.value_optimizer.state_dict(),
            "buffer": self.buffer.items,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": self.rng.bit_generator.state,
            "rounds_done": self.rounds_done,
            "images_seen": self.images_seen,
            "history": self.history,
            "seconds": seconds,
        }

    def resume(self, folder: str | Path) -> DPOK:
        """Load `folder/trainer_state.pt` (written by `save`) and continue from its round. The config must match the
        saved one except for the budget fields (rounds, minutes, save_every)."""
        from peft import set_peft_model_state_dict

        path = Path(folder) / TRAINER_STATE
        if not path.is_file():
            raise FileNotFoundError(f"cannot resume: {path} does not exist (written by `pasta align dpok` on save)")
        state = torch.load(path, map_location="cpu", weights_only=False)
        mine = self.config_json()
        changed = sorted(
            k
            for k in set(mine) | set(state["config"])
            if k not in RESUMABLE_FIELDS and mine.get(k) != state["config"].get(k)
        )
        if changed:
            details = ", ".join(f"{k}: saved {state['config'].get(k)!r}, now {mine.get(k)!r}" for k in changed)
            raise ValueError(
                f"cannot resume {path}: the config differs ({details}); only {', '.join(RESUMABLE_FIELDS)} may change"
            )
        result = set_peft_model_state_dict(self.unet, state["lora"])
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"cannot resume {path}: LoRA weights do not fit this UNet ({result.unexpected_keys[:3]})")
        self.value.load_state_dict(state["value"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.value_optimizer.load_state_dict(state["value_optimizer"])
        self.buffer.items = state["buffer"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.rounds_done, self.images_seen = state["rounds_done"], state["images_seen"]
        self.history, self.seconds_before = state["history"], state["seconds"]
        return self

    def summary(self, seconds: float) -> dict:
        h = self.history
        tail = h[-max(1, len(h) // 10) :] if h else []
        head = h[: max(1, len(h) // 10)] if h else []
        mean = lambda rows, k: float(np.mean([r[k] for r in rows])) if rows else math.nan  # noqa: E731
        return {
            "rounds": self.rounds_done,
            "images_seen": self.images_seen,
            "policy_gradient_steps": self.rounds_done * self.config.policy_steps,
            "reward_first_rounds": mean(head, "reward_mean"),
            "reward_last_rounds": mean(tail, "reward_mean"),
            "kl_trajectory_last_rounds": mean(tail, "kl_trajectory"),
            "kl_regularizer_last_rounds": mean(tail, "kl_regularizer"),
            "round_seconds_median": float(np.median([r["round_seconds"] for r in h])) if h else math.nan,
            "train_seconds": seconds,
            "threads": torch.get_num_threads(),
        }

    def save(self, out: str | Path, seconds: float, card: dict | None = None) -> Path:
        s = self.summary(seconds)
        full = {
            "method": "dpok",
            "summary": "DPOK (Fan et al. 2023): online policy gradient on the DDIM (eta > 0) sampler with a value "
            "baseline, a clamped importance ratio and a KL penalty to the frozen base model.",
            "reward": self.reward.spec,
            "reward_held_out_accuracy": self.reward.held_out_accuracy(),
            "steps": {"rounds": s["rounds"], "policy_gradient_steps": s["policy_gradient_steps"]},
            "images_seen": s["images_seen"],
            "kl": {
                **estimate_kl(self.model, self.unet, list(dict.fromkeys(self.prompts))[:8], seed=self.config.seed),
                "trajectory_estimate_training": s["kl_trajectory_last_rounds"],
                "regularizer_mean_sq_eps_diff": s["kl_regularizer_last_rounds"],
                "definition_training": "sum over stochastic DDIM steps of the per-dimension Gaussian KL between "
                "the adapted and base policies, on replayed transitions of the last rounds",
            },
            "train_seconds": s["train_seconds"],
            "threads": s["threads"],
            "base_model": self.model.describe(),
            "metrics": s,
            "history": self.history,
            "config": self.config_json(),
            **(card or {}),
        }
        folder = save_adapter(self.unet, out, full)
        tmp = folder / (TRAINER_STATE + ".tmp")
        torch.save(self.trainer_state(seconds), tmp)
        os.replace(tmp, folder / TRAINER_STATE)  # a run killed mid-write keeps the previous checkpoint
        return folder


def train_dpok(
    model: EmbeddedDiffusion,
    reward: Reward,
    prompts: list[str],
    config: DPOKConfig | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    card: dict | None = None,
    resume: bool = False,
) -> dict:
    """Run DPOK and write the adapter (with its model card) to `out`; returns the training summary. With `resume`,
    continue from `out`'s trainer state when there is one (and start fresh when there is none)."""
    trainer = DPOK(model, reward, prompts, config)
    if resume and out is not None and (Path(out) / TRAINER_STATE).is_file():
        trainer.resume(out)
    return trainer.train(out, progress, card)
