"""Write simulated episodes to the log store, in the same format as the app's sessions.

Simulated users are stored as users of kind "simulated" with their planted type in `attributes`, so evaluation
can compare recovered types with planted ones; each column's world embedding stands in for its image embeddings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pasta.logbook import LogStore
from user_sim.rollout import Episode
from user_sim.world import EmbeddingWorld

BULK_EPISODES = 500
"""Episodes written per transaction (`LogStore.bulk`): an interrupted run keeps every finished batch."""


def write_episodes(
    store: LogStore, episodes: Iterable[Episode], world: EmbeddingWorld, type_names: list[str] | None = None
) -> int:
    n = 0
    batch: list[Episode] = []
    for episode in episodes:
        batch.append(episode)
        if len(batch) == BULK_EPISODES:
            n += _write_batch(store, batch, world, type_names)
            batch = []
    return n + _write_batch(store, batch, world, type_names)


def _write_batch(
    store: LogStore, episodes: list[Episode], world: EmbeddingWorld, type_names: Sequence[str] | None
) -> int:
    if not episodes:
        return 0
    with store.bulk():
        for episode in episodes:
            _write_episode(store, episode, world, type_names)
    return len(episodes)


def _write_episode(store: LogStore, episode: Episode, world: EmbeddingWorld, type_names: Sequence[str] | None) -> None:
    store.add_user(
        episode.user_id,
        kind="simulated",
        attributes={
            "planted_type": episode.type_index,
            "planted_type_name": type_names[episode.type_index] if type_names else None,
        },
    )
    session = store.start_session(
        world.captions[episode.initial_index],
        episode.seed,
        user_id=episode.user_id,
        source="simulator",
        settings={"policy": episode.policy},
    )
    for turn in episode.turns:
        store.log_turn(
            session,
            turn.index,
            turn.prompt,
            turn.candidates,
            turn.scores,
            turn.slate,
            [episode.seed] * len(turn.slate),
            image_embeddings=world.embeddings[turn.column_indices][:, None, :],
        )
        store.log_choice(session, turn.index, turn.choice, rating=turn.rating)
