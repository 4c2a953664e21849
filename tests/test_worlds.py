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


def test_the_fashion_worlds_edits_change_what_their_category_names():
    world, rng = load_world("fashion"), np.random.default_rng(0)
    prompt = "a red dress on the grass"
    subjects = world.edits(prompt, "subject", rng, 5)
    assert len(subjects) >= 5 and all("red" in e and "grass" in e for e in subjects)
    assert {g for e in subjects for g in world.drawable(e)} - {"dress"}
    assert all(world.drawable(e) == ["dress"] for e in world.edits(prompt, "creative", rng, 5))
    assert "a red frock on the grass" in world.edits(prompt, "rephrase", rng, 5)
    with pytest.raises(ValueError, match="unknown category 'colour'"):
        world.edits(prompt, "colour", rng, 5)


@pytest.mark.emoji_data
def test_the_emoji_worlds_edits_stay_drawable_and_keep_what_they_do_not_edit():
    world, rng = load_world("emoji"), np.random.default_rng(0)
    prompt = "a small red apple on the left at sunset"
    subjects = world.edits(prompt, "subject", rng, 5)
    assert len(subjects) >= 5
    for e in subjects:  # another subject, same size, place and scene
        assert world.drawable(e) and world.drawable(e) != ["red apple"]
        assert e.startswith("a small ") and e.endswith("on the left at sunset")
    scenes = world.edits(prompt, "creative", rng, 5)
    assert len(scenes) >= 5 and all(world.drawable(e) == ["red apple"] and "sunset" not in e for e in scenes)
    details = world.edits(prompt, "detail", rng, 5)
    assert "two small red apples on the left at sunset" in details
    assert "a red apple on the left at sunset" in details  # the size word dropped
    styles = world.edits("a neon rocket on a night sky", "style", rng, 5)
    assert "a rocket on a night sky" in styles and "a rocket on a night sky, in pixel art" in styles
    assert "a tyrannosaurus rex in the snow" in world.edits("A T-Rex in the snow", "rephrase", rng, 5)
    assert world.edits("two cats on the grass", "detail", rng, 5).count("a cat on the grass") == 1
    elsewhere = world.edits("portrait of an old fisherman", "subject", rng, 5)
    assert all(e.startswith("portrait of an old fisherman, with a") and world.drawable(e) for e in elsewhere)


@pytest.mark.emoji_data
def test_the_retrieval_generator_proposes_the_emoji_worlds_edits():
    from pasta.backends.minilm import shared_minilm
    from pasta.candidates.retrieval import RetrievalGenerator

    world = load_world("emoji")
    out = RetrievalGenerator(shared_minilm().embed, world).propose(["a castle at sunset"])
    assert len(out) == 25
    subjects = [c.text for c in out if c.category == "subject"]
    assert len(subjects) == 5 and all(world.drawable(t) and "castle" not in t for t in subjects)
