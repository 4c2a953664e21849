"""The Bayesian reference: what an agent reaches that knows everything about a population but the person.

Why: the oracle knows each person's utility, so its gain over LMM order is not what learning a person from one pick
out of four columns a turn, for five turns, can reach. This policy knows the population's form exactly (the planted
types, or each family's utility form, parameter prior and choice noise, `user_sim.populations`) and the world tuple
of every prompt, but not which person it plays: it keeps the posterior over hypotheses about the person from the
session's picks and shows the choice-model slate under draws from it (one column per category, as the agents, with
the current prompt kept on the last turn). It looks one pick ahead only, like the agents' myopic slate;
`ahead=True` ("bayes-ahead") looks one turn further before the last turn: it values a slate by what each pick
would let it reach next, `sum_j P(j) max_e E[u(e) | the picks and j]` over e = j or any single edit of j, so a slate
whose pick tells more about the person is worth more (its best myopic slates are re-ranked so).

Hypotheses per family: the planted types themselves; for target seekers the exact grid of every target tuple times
`n_weights` weight vectors from the prior; for the other families `per_family` people drawn from the family's own
prior (a sampled posterior: importance weights on prior draws). A mixture holds every family's hypotheses, each
family with its share of the prior.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pasta.contracts import Candidate
from pasta.policy.slate import choice_model_slate, final_turn_keep, one_per_category_slates
from pasta.policy.state import PolicyState
from user_sim.populations import (
    FAMILY_UTILITIES,
    TARGET_WEIGHTS,
    Params,
    Population,
    count_params,
    family_params,
    stack_params,
    take_params,
)
from user_sim.users import planted_population
from user_sim.world import EmbeddingWorld


@dataclass
class Hypotheses:
    """One family's hypotheses about the person: `planted` utility tables [H, tuples], or a family's `params`."""

    family: str
    size: int
    log_prior: float
    """Log prior of each hypothesis (the family's share of the population over its `size` hypotheses)."""
    params: Params | None = None
    tables: np.ndarray | None = None

    def utilities(self, tuples: np.ndarray, columns: np.ndarray, initial: int, rows: np.ndarray | None = None):
        """[H or len(rows), len(columns)]: each column's utility under each hypothesis (or only `rows`)."""
        if self.tables is not None:
            tables = self.tables if rows is None else self.tables[rows]
            return tables[:, columns]
        params = self.params if rows is None else take_params(self.params, rows)
        return FAMILY_UTILITIES[self.family](params, tuples[columns], tuples[initial])


def target_grid(tuples: np.ndarray, weights: np.ndarray) -> Params:
    """Every target tuple with every weight vector: hypothesis h is tuple h // len(weights), weights h % len(weights)."""
    n = len(weights)
    return {"target": np.repeat(tuples.astype(np.float64), n, axis=0), "weights": np.tile(weights, (len(tuples), 1))}


class BayesPolicy:
    """The reference for one population (`people`); `world` and the seeds must be the ones its users were drawn
    with (planted types: `types_seed`, `planted_types`)."""

    name = "bayes"
    AHEAD_SLATES = 64
    """How many of the best myopic slates "bayes-ahead" re-ranks by their look-ahead value."""

    def __init__(
        self,
        people: Population,
        world: EmbeddingWorld | None = None,
        seed: int = 0,
        types_seed: int = 0,
        planted_types: int = 4,
        per_family: int = 8192,
        n_weights: int = 8,
        samples: int = 400,
        ahead: bool = False,
    ) -> None:
        world = world or EmbeddingWorld()
        self.ahead, self.name = ahead, "bayes-ahead" if ahead else "bayes"
        self.tuples = world.tuples.astype(np.int64)
        self.world = world  # the same object the rollouts carry: pickled once with them
        self.samples = samples
        self._index = {e.tobytes(): i for i, e in enumerate(world.embeddings)}
        self._dim = world.embeddings.shape[1]
        share = -np.log(len(people.families))
        self.hypotheses: list[Hypotheses] = []
        for k, family in enumerate(people.families):
            if family == "planted":
                types = planted_population(planted_types, seed=types_seed)
                tables = np.stack([t.utility_table(world) for t in types])
                self.hypotheses.append(Hypotheses(family, len(tables), share - np.log(len(tables)), tables=tables))
                continue
            if family == "target":
                weights = np.random.default_rng([seed, 23]).uniform(*TARGET_WEIGHTS, (n_weights, self.tuples.shape[1]))
                params = target_grid(self.tuples, weights)
            else:
                rng = np.random.default_rng([seed, 31, k])
                params = stack_params([family_params(family, world, rng) for _ in range(per_family)])
            size = count_params(params)
            self.hypotheses.append(Hypotheses(family, size, share - np.log(size), params=params))

    def _tuples_of(self, embeddings: np.ndarray) -> np.ndarray:
        """World tuple indices of prompts given by their (world) embeddings."""
        keys = [np.asarray(e[: self._dim], np.float32).tobytes() for e in embeddings]
        if not all(k in self._index for k in keys):
            raise ValueError("bayes plays only in the simulator's world (a prompt is not one of its tuples)")
        return np.array([self._index[k] for k in keys])

    def posterior(self, state: PolicyState) -> tuple[list[np.ndarray], np.ndarray]:
        """(rows per family's hypotheses, probabilities): `samples` draws from the posterior after the session's
        picks, as distinct hypotheses (indices into each family's `Hypotheses`) and their shares of the draws."""
        if state.initial_embedding is None:
            raise ValueError("bayes needs the session's first prompt (the state has no initial embedding)")
        T = float(state.planted_temperature)
        initial = int(self._tuples_of(np.asarray(state.initial_embedding)[None])[0])
        log_p = np.concatenate([np.full(h.size, h.log_prior) for h in self.hypotheses])
        for features, choice in state.history_slates:
            columns = self._tuples_of(features)
            U = np.concatenate([h.utilities(self.tuples, columns, initial) for h in self.hypotheses])
            logits = U / T
            logits -= logits.max(1, keepdims=True)
            log_p += logits[:, choice] - np.log(np.exp(logits).sum(1))
        p = np.exp(log_p - log_p.max())
        rng = np.random.default_rng([int(state.seed), int(state.turn), 29])
        drawn, counts = np.unique(rng.choice(len(p), size=self.samples, p=p / p.sum()), return_counts=True)
        starts = np.cumsum([0] + [h.size for h in self.hypotheses])
        rows = [drawn[(drawn >= a) & (drawn < b)] - a for a, b in zip(starts[:-1], starts[1:])]
        return rows, counts / self.samples

    def select(
        self, state: PolicyState, candidates: Sequence[Candidate], slate_size: int
    ) -> tuple[list[int], np.ndarray]:
        rows, p = self.posterior(state)
        initial = int(self._tuples_of(np.asarray(state.initial_embedding)[None])[0])
        columns = self._tuples_of(state.candidate_embeddings)
        U = np.concatenate(
            [h.utilities(self.tuples, columns, initial, r) for h, r in zip(self.hypotheses, rows) if len(r)]
        ).T  # [N, drawn]
        keep = final_turn_keep(state, candidates)
        T = float(state.planted_temperature)
        last = state.turns is not None and state.turn >= state.turns - 1
        if self.ahead and not last:
            reach = [self._reach(int(j)) for j in columns]
            R = [
                np.concatenate(
                    [h.utilities(self.tuples, r, initial, rr) for h, rr in zip(self.hypotheses, rows) if len(rr)]
                )
                for r in reach
            ]  # per candidate [drawn, reachable]
            slate = self._ahead_slate(U, p, T, candidates, slate_size, R)
        else:
            slate = choice_model_slate(U, U, p, T, candidates, slate_size, keep=keep)
        return slate, (U @ p).astype(np.float32)

    def _reach(self, index: int) -> np.ndarray:
        """The tuple itself and every tuple one attribute away: where the next turn's edits can take a pick."""
        return np.asarray([index, *self.world.single_edits(index, self.world.axes)])

    def _ahead_slate(self, U, p, T, candidates, slate_size, R) -> list[int]:
        """The best of the `AHEAD_SLATES` best myopic slates by sum_j P(j) max_e E[u(e) | picks, j]."""
        by_category: dict[str, list[int]] = {}
        for i, c in enumerate(candidates):
            by_category.setdefault(c.category, []).append(i)
        slates = one_per_category_slates(by_category, min(slate_size, len(by_category)))  # [S, L]
        logits = U[slates] / T  # [S, L, H]
        P = np.exp(logits - logits.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        myopic = np.einsum("slh,slh,h->s", P, U[slates], p)
        best = np.argsort(-myopic, kind="stable")[: self.AHEAD_SLATES]
        joint = P[best] * p[None, None, :]  # [B, L, H]: P(j, h)
        pick = joint.sum(2)  # [B, L]
        value = np.zeros(len(best))
        for b, s in enumerate(slates[best]):
            for j, column in enumerate(s):
                posterior = joint[b, j] / max(pick[b, j], 1e-300)
                value[b] += pick[b, j] * float((posterior @ R[column]).max())
        return [int(i) for i in slates[best[int(np.argmax(value))]]]
