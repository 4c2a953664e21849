"""User families the project did not fit its agent to: people with a target in mind, people who prefer small steps
from their prompt, people whose taste is an interaction of attributes, people with flat taste, and mixtures.

Why: the planted types (`user_sim.users`) are linear in attributes plus one embedding direction, the very form the
EM user model fits, so an agent trained and evaluated on them cannot show whether it serves a person outside its
learned types, or whether looking ahead pays. Each family here is a documented utility over the world's attribute
tuples (some depend on the session's first prompt) with the same softmax choice rule, so every evaluation command
scores them the same way. `population(name)` returns one by name; `pasta eval agents --population NAME` runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from user_sim.users import SimulatedUser, make_users, planted_population
from user_sim.world import EmbeddingWorld

Params = dict
"""A family's parameters for H people at once: every value an array with H rows (`stack_params`), or a list of
such arrays where the rows' sizes differ by axis (a taste vector per axis, an interaction table per pair)."""


def stack_params(people: list[dict]) -> Params:
    """The parameters of several people of one family (`family_params` each) as one `Params` of H = len(people)
    rows, so a family's utility is computed for many people at once (the simulated users, one row each; the
    Bayesian reference, thousands of hypotheses)."""
    out: Params = {}
    for key in people[0]:
        values = [person[key] for person in people]
        try:
            out[key] = np.asarray(values, np.float64)
        except ValueError:  # ragged: one array per axis (or pair), H rows each
            out[key] = [np.asarray([v[i] for v in values], np.float64) for i in range(len(values[0]))]
    return out


def count_params(params: Params) -> int:
    """H: how many people's parameters `params` holds."""
    first = next(iter(params.values()))
    return len(first) if isinstance(first, np.ndarray) else len(first[0])


def take_params(params: Params, rows: np.ndarray) -> Params:
    """The given rows of every parameter."""
    return {k: v[rows] if isinstance(v, np.ndarray) else [x[rows] for x in v] for k, v in params.items()}


@dataclass
class FamilyUser(SimulatedUser):
    """A user whose utility table is made at the start of each session (`for_session`) from its parameters: a
    target tuple, an anchor (the session's first prompt) or interaction tables. `utilities` is empty until then."""

    family: str = ""
    params: dict = field(default_factory=dict, repr=False)

    def for_session(self, world: EmbeddingWorld, initial_index: int) -> SimulatedUser:
        utility = FAMILY_UTILITIES[self.family]
        table = utility(stack_params([self.params]), world.tuples, world.tuples[initial_index])[0]
        return SimulatedUser(self.user_id, self.type_index, table, self.temperature, self.rating_noise)


TARGET_WEIGHTS = (1.0, 3.0)
"""A target seeker's weight of each attribute is drawn uniformly from this range."""

# Each family's utility: (Params of H people, world tuples [C, A], the session's first tuple [A]) -> [H, C].


def _taste(params: Params, tuples: np.ndarray) -> np.ndarray:
    return sum(w[:, tuples[:, i]] for i, w in enumerate(params["taste"]))


def _target_utilities(params: Params, tuples: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """sum over axes of weight[axis] * (value == target[axis]): a specific image in mind. Nothing about the target
    is learnable across people (it is drawn per person), so a session must find it out from the person's picks."""
    match = tuples[None, :, :] == params["target"][:, None, :].astype(tuples.dtype)
    return (match * params["weights"][:, None, :]).sum(2).astype(np.float32)


def _small_steps_utilities(params: Params, tuples: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """A mild taste minus a cost per attribute changed from the session's first prompt: stay near what I asked."""
    changed = (tuples != np.asarray(initial)[None, :]).sum(1)
    return (_taste(params, tuples) - params["step_cost"][:, None] * changed[None, :]).astype(np.float32)


def _interaction_utilities(params: Params, tuples: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """Pairwise tables and no main effects: a style is liked only with some settings, a detail only on some
    subjects (in the garment world: style x background, garment x colour; the EM user model's utility is linear in
    each column's features, so it cannot express this). The pairs are the same for everyone."""
    pairs = params["pairs"][0].astype(int)
    total = np.zeros((len(params["tables"][0]), len(tuples)), np.float32)
    for (a, b), table in zip(pairs, params["tables"]):
        total += table[:, tuples[:, a], tuples[:, b]]
    return total


def _flat_utilities(params: Params, tuples: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """Almost no taste: tiny attribute weights, so choices are nearly uniform; no policy should do much better or
    worse than another, and an agent must not lose here."""
    return _taste(params, tuples).astype(np.float32)


FAMILY_UTILITIES: dict[str, Callable[[Params, np.ndarray, np.ndarray], np.ndarray]] = {
    "target": _target_utilities,
    "small-steps": _small_steps_utilities,
    "interaction": _interaction_utilities,
    "flat": _flat_utilities,
}


def family_params(family: str, world: EmbeddingWorld, rng: np.random.Generator) -> dict:
    sizes = world.sizes
    if family == "target":
        return {
            "target": [int(rng.integers(n)) for n in sizes],
            "weights": rng.uniform(*TARGET_WEIGHTS, len(sizes)).tolist(),
        }
    if family == "small-steps":
        return {"taste": [rng.normal(0, 0.5, n).tolist() for n in sizes], "step_cost": 1.5}
    if family == "interaction":
        edits, axes = world.category_axes, world.axes  # which axes each candidate category edits
        pairs = [
            (axes.index(edits["style"][0]), axes.index(edits["creative"][0])),
            (axes.index(edits["subject"][0]), axes.index(edits["detail"][0])),
        ]
        return {"pairs": pairs, "tables": [rng.normal(0, 1.5, (sizes[a], sizes[b])).tolist() for a, b in pairs]}
    if family == "flat":
        return {"taste": [rng.normal(0, 0.05, n).tolist() for n in sizes]}
    raise ValueError(f"unknown family {family!r}")


@dataclass(frozen=True)
class Population:
    """A named way to draw simulated users: one family, the planted types, or a mixture of families."""

    name: str
    families: tuple[str, ...]
    """Families users are drawn from uniformly; "planted" means the planted types of `user_sim.users`."""
    description: str

    def group_names(self, planted_types: int = 4) -> list[str]:
        """What a user's `type_index` names: the planted type, or the family in a mixture."""
        if self.families == ("planted",):
            return [f"type-{k}" for k in range(planted_types)]
        return list(self.families) if len(self.families) > 1 else [self.name]

    def users(
        self,
        world: EmbeddingWorld,
        n: int,
        seed: int,
        temperature: float = 0.3,
        types_seed: int = 0,
        planted_types: int = 4,
    ) -> list[SimulatedUser]:
        """n users; the same arguments give the same users. Planted users get one of the types
        `planted_population(planted_types, types_seed)` (shared by training and held-out users); family users draw
        their own parameters from `seed`."""
        if self.families == ("planted",):
            types = planted_population(planted_types, seed=types_seed)
            return make_users(world, types, n, seed=seed, temperature=temperature)
        rng = np.random.default_rng([seed, 19])
        users: list[SimulatedUser] = []
        for i in range(n):
            k = int(rng.integers(len(self.families)))
            family = self.families[k]
            user_id = f"{self.name}-{seed}-{i}"
            if family == "planted":
                raise ValueError("planted types cannot be mixed with families")
            params = family_params(family, world, rng)
            users.append(FamilyUser(user_id, k, np.zeros(0, np.float32), temperature, family=family, params=params))
        return users


FAMILIES = ("target", "small-steps", "interaction", "flat")
POPULATIONS: dict[str, Population] = {
    "planted": Population("planted", ("planted",), "4 planted types: linear in attributes plus an embedding direction"),
    "target": Population("target", ("target",), "a specific image in mind: utility counts the target's attributes"),
    "small-steps": Population("small-steps", ("small-steps",), "prefers staying near the first prompt"),
    "interaction": Population("interaction", ("interaction",), "style x setting and subject x detail tastes"),
    "flat": Population("flat", ("flat",), "almost no taste: near-uniform choices"),
    "mixture": Population("mixture", FAMILIES, "each user from one of the four families, uniformly"),
}


def population(name: str) -> Population:
    if name not in POPULATIONS:
        raise ValueError(f"unknown population {name!r}: choose one of {', '.join(POPULATIONS)}")
    return POPULATIONS[name]
