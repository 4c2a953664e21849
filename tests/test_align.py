"""Aligned diffusion on a tiny real model: the DDIM Gaussian policy, DPOK, reward-weighted fine-tuning, Focus-N-Fix,
adapters (save, model card, reload through the app's `EmbeddedTextToImage`), `pasta align` and `pasta eval align`.

The model is a randomly initialised `UNet2DConditionModel` built like `embedded_t2i.build_unet` with small channels,
saved with `save_pretrained` in a temp folder, conditioned on the real MiniLM; 16x16 images, 4 sampling steps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from model_scripts import tiny_unet

from pasta.align.adapters import LoraSettings, read_card
from pasta.align.ddim_policy import DDIMPolicy, ddim_timesteps
from pasta.align.diffusion import EmbeddedDiffusion
from pasta.align.dpok import DPOK, DPOKConfig
from pasta.align.focus_n_fix import FocusNFix, FocusNFixConfig, outside_change, problem_mask
from pasta.align.rewards import RednessReward
from pasta.align.rwr import RWRConfig, train_rwr
from pasta.backends.embedded_t2i import EmbeddedT2IConfig

PROMPTS = ["a red dress", "a blue coat on grass", "a green bag at sunset", "a striped shirt"]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from pasta.backends.embedded_t2i import build_train_scheduler

    folder = tmp_path_factory.mktemp("tiny_t2i")
    torch.manual_seed(0)
    tiny_unet().save_pretrained(folder / "unet")
    build_train_scheduler().save_pretrained(folder / "scheduler")
    EmbeddedT2IConfig(image_size=16, patch_size=2, num_inference_steps=4, guidance_scale=2.0, display_size=16).save(
        folder
    )
    return folder


@pytest.fixture
def model(tiny_model_dir, minilm) -> EmbeddedDiffusion:
    return EmbeddedDiffusion(tiny_model_dir, text=minilm)


@pytest.fixture(scope="module")
def denoiser_dir(tmp_path_factory, minilm) -> Path:
    """The tiny UNet after 60 Adam steps of denoising coloured blobs. A random UNet saturates ~95% of its pixels at
    +-1, where the clamp blocks every gradient, so methods that backpropagate through sampling see no signal."""
    from pasta.backends.embedded_t2i import build_train_scheduler, to_patches

    folder = tmp_path_factory.mktemp("tiny_denoiser")
    torch.manual_seed(0)
    unet, scheduler = tiny_unet(), build_train_scheduler()
    colours = torch.tensor([[1.0, -0.8, -0.8], [-0.8, 0.6, -0.8], [-0.8, -0.6, 1.0], [0.0, 0.0, 0.0]])
    pooled, tokens, mask = minilm.encode([f"a {c} square" for c in ("red", "green", "blue", "grey")])
    y, x = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    blob = (((y - 7.5) ** 2 + (x - 7.5) ** 2) < 25).float()
    optimizer = torch.optim.Adam(unet.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        k = torch.randint(0, 4, (32,), generator=g)
        x0 = to_patches(colours[k][:, :, None, None] * blob + (1 - blob) * 0.6, 2)
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, 1000, (32,), generator=g)
        v = unet(
            scheduler.add_noise(x0, noise, t),
            t,
            encoder_hidden_states=tokens[k],
            class_labels=pooled[k],
            encoder_attention_mask=mask[k],
        ).sample
        loss = (v - scheduler.get_velocity(x0, noise, t)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    unet.save_pretrained(folder / "unet")
    scheduler.save_pretrained(folder / "scheduler")
    EmbeddedT2IConfig(image_size=16, patch_size=2, num_inference_steps=4, guidance_scale=2.0, display_size=16).save(
        folder
    )
    return folder


def small_dpok(**overrides) -> DPOKConfig:
    base = dict(
        num_inference_steps=4,
        guidance_scale=2.0,
        prompts_per_round=2,
        images_per_prompt=4,
        policy_steps=4,
        policy_batch=8,
        value_steps=2,
        value_batch=16,
        buffer_size=16,
        lr=1e-2,
        grad_clip=1.0,
        rounds=1,
    )
    return DPOKConfig(**{**base, **overrides})


@torch.no_grad()
def mean_redness(model: EmbeddedDiffusion, unet, policy: DDIMPolicy, n: int = 32, seed: int = 123) -> float:
    """Redness of a fixed batch of policy samples (same noise and step noise every call)."""
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn((n, *model.sample_shape), generator=g)
    trajectory = policy.rollout(unet, model.condition(prompts), noise, g)
    return float(RednessReward()(model.to_pixels(trajectory.final), prompts).mean())


# ------------------------------------------------------------------------------------------- the policy


def test_ddim_policy_step_matches_diffusers_ddim(model):
    """Our DDIM (eta > 0) mean and sigma reproduce diffusers' DDIMScheduler.step with the same eps and noise."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_pretrained(
        model.folder / "scheduler",
        clip_sample=True,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
        prediction_type="epsilon",
    )
    scheduler.set_timesteps(4)
    policy = DDIMPolicy(model, 4, eta=0.7, guidance_scale=2.0)
    assert policy.timesteps == [int(t) for t in scheduler.timesteps] == ddim_timesteps(4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((3, *model.sample_shape), generator=g)
    for i, t in enumerate(policy.timesteps):
        eps = torch.randn(x.shape, generator=g)
        z = torch.randn(x.shape, generator=g)
        ours = policy.mean_from_eps(x, eps, i) + policy.sigma[i] * z
        ref = scheduler.step(eps, t, x, eta=0.7, use_clipped_model_output=True, variance_noise=z).prev_sample
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
        x = ref
    assert policy.sigma[-1] == 0 and all(policy.sigma[i] > 0 for i in policy.stochastic_steps)
    assert policy.stochastic_steps == [0, 1, 2]


def test_v_model_policy_matches_diffusers_ddim_on_the_raw_v_output(model, minilm):
    """The shipped model predicts v: the policy's mean (x0 and eps taken from the guided v) gives the same DDIM step
    as diffusers stepping on the guided v itself, at the first step (abar ~ 0) too."""
    from diffusers import DDIMScheduler

    assert model.prediction_type == "v_prediction"
    scheduler = DDIMScheduler.from_pretrained(
        model.folder / "scheduler", clip_sample=True, set_alpha_to_one=True, timestep_spacing="trailing"
    )
    scheduler.set_timesteps(4)
    policy = DDIMPolicy(model, 4, eta=0.7, guidance_scale=2.0)
    cond = model.condition(["a red square", "a blue square"])
    g = torch.Generator().manual_seed(1)
    x = torch.randn((2, *model.sample_shape), generator=g)
    for i, t in enumerate(policy.timesteps):
        z = torch.randn(x.shape, generator=g)
        ours = policy.mean(model.unet, x, i, cond) + policy.sigma[i] * z
        v = model.guided_output(model.unet, x, t, cond, 2.0)
        ref = scheduler.step(v, t, x, eta=0.7, use_clipped_model_output=True, variance_noise=z).prev_sample
        torch.testing.assert_close(ours, ref, atol=2e-4, rtol=1e-4)
        x = ref


def test_log_prob_is_the_gaussian_density_averaged_over_dimensions(model):
    policy = DDIMPolicy(model, 4, eta=1.0, guidance_scale=2.0)
    mean = torch.randn(2, *model.sample_shape)
    x = mean + policy.sigma[1] * torch.randn_like(mean)
    expected = torch.distributions.Normal(mean, policy.sigma[1]).log_prob(x).mean(dim=(1, 2, 3))
    torch.testing.assert_close(policy.log_prob(x, mean, 1), expected)
    torch.testing.assert_close(policy.log_prob(x, mean, torch.tensor([1, 1])), expected)
    with pytest.raises(ValueError, match="deterministic step"):
        policy.log_prob(x, mean, 3)


def test_at_initialization_the_ratio_is_one_and_the_kl_is_zero(model):
    trainer = DPOK(model, RednessReward(), PROMPTS, small_dpok())
    trainer.rollout()
    batch = trainer.buffer.sample(8, torch.Generator().manual_seed(1))
    loss, parts = trainer.policy_loss(batch)
    torch.testing.assert_close(parts["ratio"], torch.ones(8), atol=1e-5, rtol=0)
    assert torch.equal(parts["kl_regularizer"], torch.zeros(8))
    assert torch.equal(parts["kl_per_step"], torch.zeros(8))
    assert float(parts["in_band"]) == 1.0
    loss.backward()  # the policy gradient reaches the LoRA weights (B) at initialization
    grads = [p.grad for n, p in trainer.unet.named_parameters() if "lora_B" in n]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


def test_dpok_increases_a_programmatic_reward_on_a_tiny_model(model):
    """A random tiny UNet responds weakly to its LoRA weights, so the step is large and the ratio band wide (the
    paper's 1e-4 band with a step this large would zero most gradients after the first update)."""
    torch.manual_seed(0)
    trainer = DPOK(model, RednessReward(), PROMPTS, small_dpok(rounds=10, lr=0.1, ratio_clip=0.5))
    before = mean_redness(model, trainer.unet, trainer.policy, n=64)
    summary = trainer.train(progress=False)
    after = mean_redness(model, trainer.unet, trainer.policy, n=64)
    assert summary["rounds"] == 10 and summary["images_seen"] == 10 * 8
    assert after > before + 0.03, (before, after)
    assert summary["kl_trajectory_last_rounds"] > 0


def test_dpok_resumed_from_its_checkpoint_continues_exactly(tiny_model_dir, minilm, tmp_path):
    """4 rounds in one go == 2 rounds, stop, resume from the saved trainer state, 2 more: same LoRA weights, same
    history. A different experiment (changed learning rate) refuses to resume."""
    from peft import get_peft_model_state_dict

    def trainer(**overrides):
        torch.manual_seed(0)
        return DPOK(EmbeddedDiffusion(tiny_model_dir, text=minilm), RednessReward(), PROMPTS, small_dpok(**overrides))

    straight = trainer(rounds=4)
    straight.train(tmp_path / "straight", progress=False)
    trainer(rounds=2).train(tmp_path / "split", progress=False)
    resumed = trainer(rounds=4).resume(tmp_path / "split")
    assert resumed.rounds_done == 2 and len(resumed.history) == 2
    resumed.train(tmp_path / "split", progress=False)
    a, b = get_peft_model_state_dict(straight.unet), get_peft_model_state_dict(resumed.unet)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["reward_mean"] for h in straight.history] == [h["reward_mean"] for h in resumed.history]
    assert read_card(tmp_path / "split")["steps"]["rounds"] == 4

    with pytest.raises(ValueError, match="config differs.*lr"):
        trainer(rounds=4, lr=0.5).resume(tmp_path / "split")
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        trainer().resume(tmp_path / "nothing-here")


# ----------------------------------------------------------------------------------------------- adapters


def test_adapter_save_reload_reproduces_outputs_exactly_and_replaces(model, tiny_model_dir, minilm, tmp_path):
    from pasta.backends.embedded_t2i import EmbeddedTextToImage

    trainer = DPOK(model, RednessReward(), PROMPTS, small_dpok(rounds=2))
    trainer.train(tmp_path / "dpok", progress=False, card={"prompts": {"spec": "test"}})
    card = read_card(tmp_path / "dpok")
    assert card["method"] == "dpok" and card["reward"] == "redness"
    assert card["steps"]["rounds"] == 2 and card["kl"]["trajectory_kl_per_dim"] > 0
    assert card["base_model"]["unet_sha256_16"] == model.fingerprint()
    assert "dpok" in (tmp_path / "dpok" / "README.md").read_text()

    seeds, prompts = [3, 4], PROMPTS[:2]
    with torch.no_grad():
        trained = model.to_pixels(
            model.app_sample(trainer.unet, model.initial_noise(seeds, 2), model.condition(prompts).repeat_interleave(2))
        )
    app = EmbeddedTextToImage(tiny_model_dir, text=minilm, bfloat16=False)  # align samples in float32
    base = app.sample_tensor(prompts, seeds, 2)
    app.load_adapter(tmp_path / "dpok")
    assert torch.equal(app.sample_tensor(prompts, seeds, 2), trained)
    assert not torch.equal(trained, base)
    app.load_adapter(tmp_path / "dpok")  # again: replaces, does not stack
    assert torch.equal(app.sample_tensor(prompts, seeds, 2), trained)
    fresh = EmbeddedTextToImage(tiny_model_dir, text=minilm, adapter=tmp_path / "dpok", bfloat16=False)
    assert torch.equal(fresh.sample_tensor(prompts, seeds, 2), trained)


def test_loading_an_adapter_on_other_base_weights_warns(model, denoiser_dir, minilm, tmp_path):
    import warnings

    from pasta.backends.embedded_t2i import EmbeddedTextToImage

    DPOK(model, RednessReward(), PROMPTS, small_dpok(rounds=1)).train(tmp_path / "dpok", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the base it was trained on: no warning
        EmbeddedTextToImage(model.folder, text=minilm, adapter=tmp_path / "dpok")
    with pytest.warns(UserWarning, match="trained on other base weights"):
        EmbeddedTextToImage(denoiser_dir, text=minilm, adapter=tmp_path / "dpok")


def test_alignment_samples_exactly_the_apps_images(model, tiny_model_dir, minilm):
    from pasta.backends.embedded_t2i import EmbeddedTextToImage

    app = EmbeddedTextToImage(tiny_model_dir, text=minilm, bfloat16=False)  # alignment samples in float32
    with torch.no_grad():
        ours = model.to_pixels(
            model.app_sample(
                model.unet, model.initial_noise([7, 8], 2), model.condition(PROMPTS[:2]).repeat_interleave(2)
            )
        )
    assert torch.equal(ours, app.sample_tensor(PROMPTS[:2], [7, 8], 2))


# ---------------------------------------------------------------------------------- Focus-N-Fix and RWR


def test_problem_mask_takes_the_most_salient_share_of_pixels(model):
    pixels = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = problem_mask(RednessReward(), pixels, ["a", "b"], fraction=0.25, smoothing=1)
    assert mask.shape == (2, 1, 16, 16)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (mask.sum(dim=(1, 2, 3)) >= 64).all()  # ties at the threshold can only add pixels
    centre, corner = mask[:, 0, 6:10, 6:10], mask[:, 0, :4, :4]
    assert centre.min() == 1 and corner.max() == 0  # centre-weighted redness looks at the centre
    base = torch.zeros(1, 3, 4, 4)
    m = torch.zeros(1, 1, 4, 4)
    m[..., :2, :] = 1
    moved = base.clone()
    moved[..., :2, :] = 0.5  # change only inside the mask
    assert float(outside_change(moved, base, m)) == 0.0
    moved[..., 3, 3] = 1.0
    assert float(outside_change(moved, base, m, squared=False)) == pytest.approx(3 * 1.0 / (3 * 8))


def test_focus_n_fix_raises_the_reward_and_keeps_the_outside_closer(denoiser_dir, minilm, tmp_path):
    torch.manual_seed(0)
    model = EmbeddedDiffusion(denoiser_dir, text=minilm)
    cfg = FocusNFixConfig(batch_size=4, seeds_per_prompt=1, lr=3e-2, steps=8, outside_weight=10.0, mask_smoothing=3)
    trainer = FocusNFix(model, RednessReward(), PROMPTS, cfg)
    index = list(range(len(trainer.items)))
    with torch.no_grad():
        _, parts0 = trainer.loss(index)
    assert float(parts0["outside_abs"].max()) == 0.0  # at initialization the adapted model draws the base image
    summary = trainer.train(tmp_path / "focus", progress=False)
    with torch.no_grad():
        _, parts = trainer.loss(index)
    gain = float((parts["reward"] - parts["base_reward"]).mean())
    assert gain > 0.005, gain
    assert float(parts["outside_abs"].mean()) < float(parts["inside_abs"].mean())
    assert summary["gradient_steps"] == 8
    card = read_card(tmp_path / "focus")
    assert card["method"] == "focus" and card["config"]["mask_fraction"] == 0.25


@pytest.mark.fashion_mnist  # the pre-training term of the loss denoises real composed garments
def test_rwr_writes_an_adapter_that_changes_the_model(model, tmp_path):
    cfg = RWRConfig(images_per_prompt=2, max_prompts=4, batch_size=4, steps=5, lr=1e-2)
    summary = train_rwr(model, RednessReward(), PROMPTS, cfg, tmp_path / "rwr", progress=False)
    assert summary["gradient_steps"] == 5 and summary["images_seen"] == 8
    assert np.isfinite(summary["pretrain_loss_last"]) and np.isfinite(summary["weighted_loss_last"])
    card = read_card(tmp_path / "rwr")
    assert card["method"] == "rwr" and card["steps"]["gradient_steps"] == 5 and card["kl"]["trajectory_kl_per_dim"] > 0
    with pytest.raises(ValueError, match="threshold"):
        train_rwr(
            EmbeddedDiffusion(model.folder, text=model.text),
            RednessReward(),
            PROMPTS,
            RWRConfig(images_per_prompt=1, max_prompts=2, steps=1, weighting="binary", threshold=5.0),
            progress=False,
        )


# -------------------------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: DPOKConfig(eta=0.0), "eta=0.0"),
        (lambda: DPOKConfig(ratio_clip=1.5), "ratio_clip=1.5"),
        (lambda: DPOKConfig(num_inference_steps=1, lr=-1), "num_inference_steps=1, lr=-1"),
        (lambda: RWRConfig(weighting="softmax"), "weighting='softmax' (exp, linear or binary)"),
        (lambda: RWRConfig(pretrain_weight=-1), "pretrain_weight=-1"),
        (lambda: FocusNFixConfig(mask_fraction=1.5), "mask_fraction=1.5"),
        (lambda: FocusNFixConfig(mask_smoothing=4), "mask_smoothing=4"),
        (lambda: LoraSettings(rank=0), "rank must be at least 1"),
    ],
)
def test_bad_configs_fail_clearly(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_bad_inputs_fail_clearly(model):
    with pytest.raises(ValueError, match="eta must be > 0"):
        DDIMPolicy(model, 4, eta=0.0)
    with pytest.raises(ValueError, match="at least one training prompt"):
        DPOK(model, RednessReward(), [], small_dpok())
    with pytest.raises(ValueError, match="cannot put LoRA"):
        DPOK(
            EmbeddedDiffusion(model.folder, text=model.text),
            RednessReward(),
            PROMPTS,
            small_dpok(lora=LoraSettings(targets=("no_such_layer",))),
        )

    class Opaque(RednessReward):
        differentiable = False
        spec = "opaque"

    with pytest.raises(ValueError, match="not differentiable"):
        FocusNFix(model, Opaque(), PROMPTS, FocusNFixConfig())
    with pytest.raises(FileNotFoundError, match="no embedded text-to-image weights"):
        EmbeddedDiffusion(model.folder / "missing")


# ---------------------------------------------------------------------------------------- command lines


def test_pasta_align_cli_writes_an_adapter_and_rejects_bad_input(tiny_model_dir, tmp_path, capsys):
    from pasta.cli import main

    out = tmp_path / "cli_dpok"
    code = main(
        [
            "align",
            "dpok",
            "--model-dir",
            str(tiny_model_dir),
            "--reward",
            "redness",
            "--prompts",
            "train:4",
            "--out",
            str(out),
            "--num-inference-steps",
            "3",
            "--prompts-per-round",
            "1",
            "--images-per-prompt",
            "2",
            "--policy-steps",
            "1",
            "--policy-batch",
            "2",
            "--value-batch",
            "4",
            "--rounds",
            "1",
        ]
    )
    assert code == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["method"] == "dpok" and card["prompts"]["count"] == 4 and card["config"]["num_inference_steps"] == 3
    assert (out / "adapter_model.safetensors").stat().st_size < 200_000
    assert main(["align", "sharpen"]) == 2
    assert "expected one of dpok, rwr, focus, reward" in capsys.readouterr().err
    assert main(["align", "dpok", "--model-dir", str(tiny_model_dir), "--reward", "shiny"]) == 2
    assert "unknown reward 'shiny'" in capsys.readouterr().err
    assert (
        main(["align", "rwr", "--model-dir", str(tiny_model_dir), "--reward", "redness", "--prompts", "train:0"]) == 2
    )
    assert "N must be between" in capsys.readouterr().err


def test_pasta_eval_align_compares_base_and_adapters(tiny_model_dir, minilm, tmp_path):
    from pasta.align.eval_align import EvalAlignConfig, evaluate_align
    from pasta.align.rewards import AlignmentHead, AlignmentReward
    from pasta.backends.image_encoder import ImageEncoder, ImageEncoderConfig
    from pasta.worlds.fashion_judge import AttributeClassifier, AttributeClassifierConfig

    torch.manual_seed(0)
    encoder_dir, reward_dir, clf_dir = tmp_path / "enc", tmp_path / "reward", tmp_path / "clf"
    ImageEncoder(ImageEncoderConfig(channels=(8, 16), blocks=(1, 1), groups=4)).save(encoder_dir)
    AlignmentReward(AlignmentHead(), ImageEncoder.load(encoder_dir)).save(
        reward_dir, {"image_encoder_dir": str(encoder_dir)}
    )
    AttributeClassifier(AttributeClassifierConfig(channels=(8, 8, 8), hidden=16)).save(clf_dir)
    model = EmbeddedDiffusion(tiny_model_dir, text=minilm)
    spec = f"alignment={reward_dir}"
    from pasta.align.rewards import make_reward

    reward = make_reward(spec)
    DPOK(model, reward, PROMPTS, small_dpok(rounds=1)).train(tmp_path / "a" / "dpok", progress=False)
    model = EmbeddedDiffusion(tiny_model_dir, text=minilm)
    FocusNFix(
        model, reward, PROMPTS, FocusNFixConfig(steps=2, batch_size=2, seeds_per_prompt=1, mask_smoothing=3)
    ).train(tmp_path / "a" / "focus", progress=False)
    cfg = EvalAlignConfig(
        adapters=(tmp_path / "a" / "dpok", tmp_path / "a" / "focus"),
        model_dir=tiny_model_dir,
        classifier_dir=clf_dir,
        n_prompts=2,
        images_per_prompt=2,
        kl_prompts=1,
        bench_round=False,
        out_dir=tmp_path / "eval",
        mask_smoothing=3,
        sampler="dpm-solver++",
    )
    metrics = evaluate_align(cfg, progress=False)
    assert metrics["reward"] == spec and metrics["world"] == "fashion"
    assert metrics["config"]["sampler"] == "dpm-solver++"  # the shipped adapters' figures' sampler, recorded
    assert set(metrics["results"]) == {"base", "dpok", "focus"}
    base, dpok = metrics["results"]["base"], metrics["results"]["dpok"]
    assert base["reward_gain"] == 0 and base["pixel_change_abs"] == 0
    assert dpok["pixel_change_abs"] > 0 and dpok["kl"]["trajectory_kl_per_dim"] > 0
    assert 0 <= dpok["attribute_accuracy_mean"] <= 1
    assert {"dpok_reward_gain_relative", "dpok_accuracy_drop_points", "focus_outside_change_vs_dpok"} <= set(
        metrics["targets"]
    )
    for name in ("metrics.json", "summary.png", "contact_sheet.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0


def test_pasta_eval_align_keeps_the_garments_flag_as_subjects():
    import tyro

    from pasta.align.eval_align import EvalAlignConfig

    old = tyro.cli(EvalAlignConfig, args=["--garments", "coat", "shirt"])
    assert old.subjects == ("coat", "shirt") == tyro.cli(EvalAlignConfig, args=["--subjects", "coat", "shirt"]).subjects
