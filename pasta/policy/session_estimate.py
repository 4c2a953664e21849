"""What this session's picks say about the person beyond the learned user types: how far from their first prompt
they want to go (`session_correction`), and which edits they favour, with how unsure that still is
(`edit_utility`, used optimistically when the types do not explain the picks: `types_explain_picks`).

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

The agents scale w by P(the types do not explain the picks) (`types_explain_picks`, the gate "+explore" uses):
a person the types predict well keeps their taste unchanged. Measured with the shipped agent ("+adapt+explore",
`pasta eval agents --train-users 200 --eval-users 600 --iql.steps 10`, gated minus ungated, final-turn utility;
seed 7 except planted): planted users of its own population (seed 0) +0.18 (5.90 -> 6.08; the agent without
estimates 6.11), planted users of another population +0.04, mixture +0.01, target +0.02, small-steps -0.04.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def choice_probabilities(
    user_model, history_slates: list[tuple[np.ndarray, int]], posterior: np.ndarray
) -> list[np.ndarray]:
    """[L] per finished turn: how likely the types, mixed by the posterior, made each column the pick. Every
    session estimate reads these; a policy using several computes them once per turn and passes them on."""
    posterior = np.asarray(posterior, np.float32)[None]
    return [user_model.predict_choice(np.asarray(X, np.float32)[None], posterior)[0] for X, _ in history_slates]


def session_correction(
    user_model,
    history_slates: list[tuple[np.ndarray, int]],
    posterior: np.ndarray,
    initial: np.ndarray | None,
    strength: float,
    probabilities: list[np.ndarray] | None = None,
    gated: bool = False,
) -> float:
    """The estimate w from the finished turns ((column features [L, 2D], choice) each); 0 at strength 0, before any
    pick or without the first prompt's embedding. `gated`: times P(the types do not explain the picks)
    (`types_explain_picks`), as the agents use it. `probabilities`: `choice_probabilities` when the caller has
    them."""
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    if strength == 0 or not history_slates or initial is None:  # nothing to learn: no choice-model passes
        return 0.0
    if probabilities is None:
        probabilities = choice_probabilities(user_model, history_slates, posterior)
    T = float(user_model.log_temperature.detach().exp())
    gradient = 0.0
    for (X, choice), p in zip(history_slates, probabilities, strict=True):
        X = np.asarray(X, np.float32)
        near = nearness(X, initial)
        gradient += float(near[int(choice)] - p @ near) / T
    w = strength * gradient
    if gated and w:
        w *= 1.0 - types_explain_picks(user_model, history_slates, posterior, probabilities)
    return w


def corrected_utilities(
    utilities: np.ndarray, features: np.ndarray, initial: np.ndarray | None, w: float
) -> tuple[np.ndarray, np.ndarray]:
    """(utilities [N, K] with every type's utility raised by w * near(x), that correction [N] itself)."""
    utilities = np.asarray(utilities, np.float32)
    if initial is None or w == 0:
        return utilities, np.zeros(len(utilities), np.float32)
    extra = (w * nearness(features, initial)).astype(np.float32)
    return utilities + extra[:, None], extra


EXPLORE_STRENGTH = 3.0
"""Optimism of the "+explore" policies, in posterior standard deviations of the session's edit utility. Chosen on
training users (300 per population, seed 5, the shipped agent, final-turn utility; LMM order 4.93 on target seekers,
3.79 on planted users; shipped agent 5.27 and 6.17): strength 3 / 6 / 10 gave 5.45 / 5.46 / 5.46 on target seekers
and 6.14 / 6.07 / 6.02 on planted users. Without the gate (`types_explain_picks`), strength 1 / 3 gave 5.43 / 5.58
on target seekers but 5.74 / 4.93 on planted users: optimism is only worth its cost where the types fail."""

EDIT_PRIOR_VARIANCE = 4.0
"""Prior variance of the session utility's weights over edit vectors (4 and 16 measured alike)."""


def types_explain_picks(
    user_model,
    history_slates: list[tuple[np.ndarray, int]],
    posterior: np.ndarray,
    probabilities: list[np.ndarray] | None = None,
) -> float:
    """P(the learned types, rather than a taste they do not know, made this session's picks): the posterior of
    the types' choice model against uniform picks, even odds before any pick. Near 1 for a person like the
    training population (their picks are well predicted), near or below 1/2 for one whose picks look random to
    the types. `probabilities`: `choice_probabilities` when the caller has them."""
    if probabilities is None:
        probabilities = choice_probabilities(user_model, history_slates, posterior)
    log_ratio = 0.0
    for (_, choice), p in zip(history_slates, probabilities, strict=True):
        log_ratio += float(np.log(max(float(p[int(choice)]), 1e-9) * len(p)))
    return float(1.0 / (1.0 + np.exp(-log_ratio)))


def edit_utility(
    user_model,
    history_slates: list[tuple[np.ndarray, int]],
    posterior: np.ndarray,
    current: np.ndarray,
    candidates: np.ndarray,
    prior_variance: float = EDIT_PRIOR_VARIANCE,
    probabilities: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(mean [N], sd [N]) of a per-session utility theta . (x - current prompt) over each candidate's edit vector.

    Why: a person with a specific image in mind has a taste no learned type holds, and only this session's picks
    tell it. With theta ~ N(0, prior_variance I) and each pick's likelihood softmax_j((u(x_j) + theta . x_j) / T),
    the Laplace posterior at theta = 0 has precision I / prior_variance + sum_t sum_j p_tj z_tj z_tj^T / T^2 (z:
    a column's text embedding minus the slate's expected one under the types' choice probabilities p) and mean
    Sigma sum_t z_t,chosen / T. The mean says which edits the picks favour (away from what was passed over, not
    undoing what was picked); the sd is largest for edits in directions no slate has shown yet, which is where a
    target seeker's next find can be (the rephrase, no edit, has sd 0). Sigma is applied through the Woodbury
    identity over the at most turns x L shown columns, not as a D x D inverse. `probabilities`:
    `choice_probabilities` when the caller has them."""
    E = np.asarray(candidates, np.float64)
    e = E - np.asarray(current, np.float64)[None, : E.shape[1]]
    if not history_slates:
        return np.zeros(len(e)), np.sqrt(prior_variance) * np.linalg.norm(e, axis=1)
    if probabilities is None:
        probabilities = choice_probabilities(user_model, history_slates, posterior)
    T = float(user_model.log_temperature.detach().exp())
    rows, gradient = [], np.zeros(e.shape[1])
    for (X, choice), p in zip(history_slates, probabilities, strict=True):
        p = np.asarray(p, np.float64)
        text = np.asarray(X, np.float32)[:, : e.shape[1]].astype(np.float64)
        z = text - p @ text
        gradient += z[int(choice)] / T
        rows.append(np.sqrt(p)[:, None] * z / T)
    A = np.concatenate(rows)  # precision = I / s2 + A^T A
    s2 = float(prior_variance)
    inner = np.linalg.inv(np.eye(len(A)) + s2 * A @ A.T)

    def sigma(v: np.ndarray) -> np.ndarray:  # Sigma @ v for rows of v: s2 (v - s2 A^T inner A v)
        return s2 * (v - s2 * ((v @ A.T) @ inner.T) @ A)

    mean = e @ sigma(gradient[None])[0]
    variance = np.einsum("nd,nd->n", e, sigma(e))
    return mean, np.sqrt(np.maximum(variance, 0.0))


@dataclass(frozen=True)
class SessionTaste:
    """What this session's picks say beyond the learned types, as the app's "your taste" panel shows it."""

    picks: int
    """Finished turns the estimate has read."""
    types_explain: float
    """`types_explain_picks`: 1/2 before any pick."""
    nearness: float
    """`session_correction` (0 where the policy does not adapt): > 0, the picks stay nearer the first prompt than the
    types expected; < 0, they stray further."""
    favoured: tuple[int, ...]
    """Candidates (indices into this turn's) whose edits the picks favour, best first: positive mean of
    `edit_utility` (empty before any pick, without candidates, or where the policy does not explore)."""


def session_taste(user_model, state, posterior: np.ndarray, adapt: float, explore: float, top: int = 3) -> SessionTaste:
    """The session estimates a policy with strengths (`adapt`, `explore`) uses, summarised for people."""
    history = state.history_slates
    probabilities = choice_probabilities(user_model, history, posterior)
    fit = types_explain_picks(user_model, history, posterior, probabilities)
    w = session_correction(user_model, history, posterior, state.initial_embedding, adapt, probabilities, gated=True)
    favoured: tuple[int, ...] = ()
    candidates = state.candidate_embeddings
    if explore and history and candidates is not None and len(candidates) and state.current_embedding is not None:
        mean, _ = edit_utility(
            user_model, history, posterior, state.current_embedding, candidates, probabilities=probabilities
        )
        best = np.argsort(-mean, kind="stable")[:top]
        favoured = tuple(int(i) for i in best if mean[i] > 0)
    return SessionTaste(len(history), fit, float(w), favoured)
