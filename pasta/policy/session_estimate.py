"""What this session's picks say about the person beyond the learned user types: how far from their first prompt
they want to go.

Why: the user model knows K types, each a utility over what a column shows, none over where the session started.
A person who wants small steps from their prompt (or, the other way, to get away from it) gets the nearest type's
taste, and nothing in the session corrects it. So a slate policy can add a per-session correction of every type's
utility by closeness to the session's first prompt, learned from the picks:

    u'_k(x) = u_k(x) + w * near(x),     near(x) = cos(prompt embedding of x, first prompt's embedding)

with w ~ N(0, strength) a priori. Each finished turn's pick has log-likelihood log softmax_j((u(x_j) + w near_j)/T);
its gradient at w = 0 is (near_chosen - E_p[near]) / T, p being the choice probabilities the types (mixed by the
posterior) predicted. The estimate is the first-order posterior mean

    w = strength * sum_t (near_chosen,t - sum_j p_tj near_tj) / T

near zero while the types predict the picks, growing with every pick that stays nearer (or strays further) than
they expected.

Measured on training users (600 of the "mixture" population, 300 planted, seed 1; shipped agent; final-turn
utility) against alternatives: the same correction over the full 768-d column features (Rocchio-style relevance
feedback) or over the user model's 8-d projection gained at most half as much on the mixture (up to 2.12 vs 2.26;
2.00 without, LMM order 2.20) and cost as much or more on planted users: they reward the rephrase (the chosen prompt
itself) over the edits a person with a target in mind needs. A Newton step on `near` (posterior mode instead of
first-order mean) cost less on planted users (6.19-6.21 vs 5.99; 6.25 without) but gained less (2.06-2.07).
"""

from __future__ import annotations

import numpy as np

SESSION_STRENGTH = 32.0
"""Prior variance of w for the "+adapt" policies. Chosen on training users (see above): strength 2 / 8 / 32 / 64 /
128 gave 2.00 / 2.09 / 2.26 / 2.24 / 2.19 on the mixture (small-steps -1.11 / -0.70 / -0.36 / -0.27 / -0.35; LMM
order -0.58) and 6.24 / 6.15 / 5.99 / 5.91 / 5.65 on planted users (6.25 without)."""


def nearness(features: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """[...]: cosine of each column's prompt embedding (the first D of its 2D features) with the first prompt's."""
    initial = np.asarray(initial, np.float32)
    text = np.asarray(features, np.float32)[..., : len(initial)]
    norms = np.linalg.norm(text, axis=-1) * np.linalg.norm(initial)
    return (text @ initial) / np.maximum(norms, 1e-8)


def session_correction(
    user_model,
    history_slates: list[tuple[np.ndarray, int]],
    posterior: np.ndarray,
    initial: np.ndarray | None,
    strength: float,
) -> float:
    """The estimate w from the finished turns ((column features [L, 2D], choice) each); 0 at strength 0, before any
    pick or without the first prompt's embedding."""
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    if strength == 0 or not history_slates or initial is None:  # nothing to learn: no choice-model passes
        return 0.0
    T = float(user_model.log_temperature.detach().exp())
    gradient = 0.0
    for X, choice in history_slates:
        X = np.asarray(X, np.float32)
        p = user_model.predict_choice(X[None], np.asarray(posterior, np.float32)[None])[0]  # [L]
        near = nearness(X, initial)
        gradient += float(near[int(choice)] - p @ near) / T
    return strength * gradient


def corrected_utilities(
    utilities: np.ndarray, features: np.ndarray, initial: np.ndarray | None, w: float
) -> tuple[np.ndarray, np.ndarray]:
    """(utilities [N, K] with every type's utility raised by w * near(x), that correction [N] itself)."""
    utilities = np.asarray(utilities, np.float32)
    if initial is None or w == 0:
        return utilities, np.zeros(len(utilities), np.float32)
    extra = (w * nearness(features, initial)).astype(np.float32)
    return utilities + extra[:, None], extra
