"""Aligned diffusion: rewards learned from data and three ways to fine-tune the text-to-image model against them,
each saved as a peft LoRA adapter that `TextToImage.load_adapter` attaches.

    rewards.py       the Reward interface: the learned prompt-image alignment reward (Lee et al. 2023), the EM user
                     model's per-type utility (personalized), programmatic rewards for tests
    train_reward.py  preference data from the attribute world and the reward's training (`pasta align reward`)
    diffusion.py     the model being aligned: conditioning, guided epsilon, pixels
    ddim_policy.py   a DDIM step with eta > 0 as a Gaussian policy, with per-step log-probabilities
    dpok.py          DPOK: online policy gradient with a value baseline, clipped ratio and KL to the base model
    rwr.py           reward-weighted likelihood fine-tuning with a pre-training regularizer (Lee et al. 2023)
    focus_n_fix.py   Focus-N-Fix: improve the reward inside a problem mask, keep the image outside it
    adapters.py      LoRA on the UNet's attention projections; save with a model card; load
    eval_align.py    `pasta eval align`: base vs each adapter on held-out prompts
    cli.py           `pasta align dpok | rwr | focus | reward`
"""
