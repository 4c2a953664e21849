"""The attribute worlds the embedded tier draws: garments (Fashion-MNIST) and emoji scenes, with their judges.
`load_world(name)` gives one behind the `pasta.worlds.world.World` interface."""

from __future__ import annotations

from pasta.worlds.world import WORLD_NAMES, PromptTask, World


def load_world(name: str) -> World:
    """The world called `name` ("fashion" or "emoji")."""
    if name == "fashion":
        from pasta.worlds.fashion_world import FashionWorld

        return FashionWorld()
    if name == "emoji":
        from pasta.worlds.emoji_world import EmojiWorld

        return EmojiWorld()
    raise ValueError(f"unknown world {name!r}: choose one of {', '.join(WORLD_NAMES)}")


def load_prompt_task(name: str) -> PromptTask:
    """The prompt-following task of the world called `name`: what alignment and `pasta eval t2i` measure."""
    if name == "fashion":
        from pasta.worlds.fashion_task import FashionTask

        return FashionTask()
    if name == "emoji":
        raise ValueError(
            "the emoji world has no prompt-following task for alignment yet; its model is evaluated by "
            "`pasta eval t2i --world emoji`"
        )
    raise ValueError(f"unknown world {name!r}: choose one of {', '.join(WORLD_NAMES)}")
