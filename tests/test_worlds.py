"""The World interface: each world's card, what a prompt names in it, its training batches; the app's polite line."""

import numpy as np
import pytest

from pasta.app.views import drawable_note
from pasta.worlds import WORLD_NAMES, load_world
from pasta.worlds.world import named_phrases, phrase_key


def test_phrases_match_whole_words_longest_first_and_plurals():
    phrases = {phrase_key(k): k for k in ("dog", "hot dog", "t-shirt", "box")}
    assert named_phrases("A hot dog and two dogs", phrases) == ["hot dog", "dog"]
    assert named_phrases("a red T-Shirt", phrases) == ["t-shirt"]
    assert named_phrases("boxes of hotdogs", phrases) == ["box"]
    assert named_phrases("a doge", phrases) == []


def test_the_fashion_world_names_its_garments_and_says_what_it_draws():
    world = load_world("fashion")
    assert world.drawable("a red T-shirt and sandals") == ["t-shirt", "sandal"]
    assert world.drawable("a jumper") == ["pullover"]
    assert world.drawable("a castle at sunset") == []
    card = world.card()
    assert "garments" in card.summary and all(world.drawable(e) for e in card.examples)
    note = drawable_note(world, "a castle at sunset")
    assert "a castle at sunset" in note and card.instead in note
    assert drawable_note(world, "a blue dress") == "" and drawable_note(None, "a castle") == ""


def test_an_unknown_world_is_refused():
    assert WORLD_NAMES == ("fashion", "emoji")
    with pytest.raises(ValueError, match="unknown world 'space'"):
        load_world("space")


@pytest.mark.emoji_data
def test_the_emoji_world_names_subjects_not_scenes_layouts_or_colours():
    world = load_world("emoji")
    assert world.drawable("a castle at sunset") == ["castle"]
    assert world.drawable("a small red apple on the left") == ["red apple"]
    assert world.drawable("two cats on the grass") == ["cat"]
    assert world.drawable("a unicorn and a rainbow") == ["unicorn", "rainbow"]
    assert world.drawable("portrait of an old fisherman on the left") == []
    card = world.card()
    assert "1,191" in card.summary and all(world.drawable(e) for e in card.examples)


@pytest.mark.emoji_data
def test_emoji_training_batches_are_64_px_captioned_and_reproducible():
    world = load_world("emoji")
    images, captions = world.training_batch(np.random.default_rng(3), 4)
    again, captions_again = world.training_batch(np.random.default_rng(3), 4)
    assert images.shape == (4, 64, 64, 3) and images.dtype == np.uint8 and len(captions) == 4
    assert np.array_equal(images, again) and captions == captions_again
    eval_images, specs = world.scenes(np.random.default_rng(4), 5, "eval")
    from pasta.worlds.emoji_scenes import is_held_out

    assert all(is_held_out(s.subjects[0], s.scene, s.style) for s in specs) and eval_images.shape[0] == 5
