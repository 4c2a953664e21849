"""Simulated users with planted types: known preferences over the embedded tier's attributes and over a direction
in embedding space, and a noisy choice model (softmax over the slate's columns) with optional 1-5 ratings.

Because the type is planted, an evaluation can ask how well the EM user model recovers it, and how close an
agent gets to an oracle that knows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from user_sim.world import AXES, SIZES, EmbeddingWorld


@dataclass
class PlantedType:
    """utility(tuple, embedding) = sum_axis attribute_weights[axis][value] + direction_weight * (direction . e)."""

    name: str
    attribute_weights: list[np.ndarray]
    """One weight vector per axis of the world's tuples (`EmbeddingWorld.axes`)."""
    direction: np.ndarray
    """Unit vector in the 384-d text space."""
    direction_weight: float = 1.0

    @classmethod
    def random(
        cls,
        name: str,
        rng: np.random.Generator,
        dim: int = 384,
        scale: float = 1.0,
        direction_weight: float = 1.0,
        sizes: tuple[int, ...] = SIZES,
    ) -> PlantedType:
        weights = [rng.normal(0.0, scale, n) for n in sizes]
        direction = rng.normal(size=dim)
        return cls(name, weights, direction / np.linalg.norm(direction), direction_weight)

    def utility_table(self, world: EmbeddingWorld) -> np.ndarray:
        """[len(world)]: this type's utility of every attribute tuple of the world (computed once per type)."""
        attr = sum(w[world.tuples[:, i]] for i, w in enumerate(self.attribute_weights))
        return (attr + self.direction_weight * world.embeddings @ self.direction).astype(np.float32)


def planted_population(n_types: int = 4, seed: int = 0, **kwargs) -> list[PlantedType]:
    rng = np.random.default_rng(seed)
    return [PlantedType.random(f"type-{k}", rng, **kwargs) for k in range(n_types)]


@dataclass
class SimulatedUser:
    user_id: str
    type_index: int
    utilities: np.ndarray = field(repr=False)
    """Utility of every world tuple for this user's type."""
    temperature: float = 0.3
    """Choice noise: P(column) = softmax(utility / temperature)."""
    rating_noise: float = 0.5

    def for_session(self, world: EmbeddingWorld, initial_index: int) -> SimulatedUser:
        """This user in a session that starts at `initial_index` (planted types' utilities do not depend on it;
        other families' do: `user_sim.populations`)."""
        return self

    def choice_probabilities(self, columns: list[int]) -> np.ndarray:
        u = self.utilities[np.asarray(columns)] / self.temperature
        p = np.exp(u - u.max())
        return p / p.sum()

    def choose(self, columns: list[int], rng: np.random.Generator) -> int:
        return int(rng.choice(len(columns), p=self.choice_probabilities(columns)))

    def rate(self, index: int, rng: np.random.Generator) -> int:
        """A 1-5 rating: the utility's place among all tuples, with noise."""
        u = self.utilities
        quantile = (u < u[index]).mean() + rng.normal(0, self.rating_noise / 5)
        return int(np.clip(1 + np.floor(quantile * 5), 1, 5))


def make_users(
    world: EmbeddingWorld, types: list[PlantedType], n_users: int, seed: int = 0, temperature: float = 0.3
) -> list[SimulatedUser]:
    """Users with uniformly drawn planted types (utility tables shared per type)."""
    rng = np.random.default_rng(seed)
    tables = [t.utility_table(world) for t in types]
    assignment = rng.integers(len(types), size=n_users)
    return [SimulatedUser(f"sim-{seed}-{i}", int(k), tables[k], temperature) for i, k in enumerate(assignment)]


__all__ = ["AXES", "PlantedType", "SimulatedUser", "make_users", "planted_population"]
