"""The emoji world's candidate edits of a prompt, in the words its captions use (`pasta.worlds.emoji_scenes`):
another subject ("subject": half from the named subject's own Unicode subgroup, so a cat becomes a dog or a
tiger as often as a rocket), another scene ("creative"), another style, a layout, size, count or background colour
("detail"), and the subject's other names ("rephrase": CLDR keywords that name only it). Every edit is something
the emoji model was trained to draw (`EmojiWorld.edits`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from pasta.worlds.emoji_scenes import PLAIN_COLOURS, SCENE_PHRASES, STYLE_PHRASES, STYLES, article, plural
from pasta.worlds.prompt_edits import alternation, extend, pick, tidy, without

SCENE = alternation(
    [p.format(colour=c) for phrases in SCENE_PHRASES.values() for p in phrases for c in PLAIN_COLOURS]
    + ["on a plain background", "at night", "in a room", "indoors"]
)
STYLE = alternation(
    [suffix.format(colour=c) for _, suffix in STYLE_PHRASES.values() for c in PLAIN_COLOURS]
    + [f"flat {c} silhouette of" for c in PLAIN_COLOURS]
    + ["outline sketch of", "line drawing", "neon", "pixel art", "flat", "glowing"]
)


def scene_of(phrase: str) -> str:
    """The scene a scene phrase names ("against a sunset sky" -> "sunset")."""
    phrase = phrase.lower()
    for scene, phrases in SCENE_PHRASES.items():
        if any(phrase == p.format(colour=c) for p in phrases for c in PLAIN_COLOURS):
            return scene
    return {"at night": "night", "in a room": "indoor", "indoors": "indoor"}.get(phrase, "plain")


POSITION = alternation(["on the left", "on the right", "in the centre", "in the center"])
SIZE = re.compile(r"\b(small|big|large|tiny)\s+", re.IGNORECASE)
STYLE_SUFFIXES = {s: STYLE_PHRASES[s][1] for s in STYLES if s in STYLE_PHRASES}


@dataclass
class EmojiEdits:
    """Edits over the world's subjects: `subgroups` (subject name -> its Unicode subgroup) and `phrases` (words that
    name a subject -> that subject's name, as `EmojiWorld.drawable` reads them)."""

    subgroups: dict[str, str]
    phrases: dict[str, str]

    @cached_property
    def subject(self) -> re.Pattern:
        """A named subject with its article or count and its size or style words: groups 'mods' and 'name'."""
        keys = sorted((k for k in self.phrases if len(k) > 1), key=len, reverse=True)
        names = "|".join(r"[\s-]+".join(re.escape(w) for w in key.split()) for key in keys)
        return re.compile(
            r"\b(?:(?:an?|the|two)\s+)?(?P<mods>(?:(?:small|big|large|tiny|neon|pixel art)\s+)*)"
            r"(?P<name>" + names + r")(?:e?s)?\b",
            re.IGNORECASE,
        )

    def named(self, prompt: str) -> tuple[re.Match, str] | None:
        """The first subject the prompt names, and its name (None where it names none)."""
        for match in self.subject.finditer(prompt):
            key = " ".join(re.findall(r"[a-z0-9']+", match.group("name").lower()))
            if key in self.phrases:
                return match, self.phrases[key]
        return None

    def other_subjects(self, name: str | None, rng: np.random.Generator, k: int) -> list[str]:
        """k subjects: half from `name`'s subgroup (where it has that many), the rest from anywhere."""
        everyone = [n for n in self.subgroups if n != name]
        near = [n for n in everyone if name and self.subgroups[n] == self.subgroups[name]]
        chosen = pick(rng, near, k // 2)
        rest = [n for n in everyone if n not in chosen]
        chosen += pick(rng, rest, k - len(chosen))
        return chosen

    def edits(self, prompt: str, category: str, rng: np.random.Generator, k: int) -> list[str]:
        found = self.named(prompt)

        def put(name: str, mods: str | None = None, count: int = 1) -> str:
            """The prompt with its named subject (article, count and all) replaced by `name`, keeping its size and
            style words unless `mods` says otherwise; appended where the prompt names no subject."""
            if found is None:
                return extend(prompt, f"with {article(name)} {name}")
            match = found[0]
            mods = match.group("mods").lower() if mods is None else mods
            said = f"two {mods}{plural(name)}" if count == 2 else f"{article(mods + name)} {mods}{name}"
            return tidy(prompt[: match.start()] + said + prompt[match.end() :])

        if category == "rephrase":
            if found is None:
                return []
            name, said = found[1], found[0].group("name").lower()
            others = [p for p, n in self.phrases.items() if n == name and p != said and len(p.split()) <= 3]
            return [put(p) for p in pick(rng, others)]
        if category == "subject":
            return [put(n) for n in self.other_subjects(found and found[1], rng, max(k, 8))]
        if category == "creative":
            named = {scene_of(m.group(0)) for m in SCENE.finditer(prompt)}
            scenes = [SCENE_PHRASES[s][int(rng.integers(2))] for s in SCENE_PHRASES if s not in named | {"plain"}]
            return [extend(without(SCENE, prompt), s) for s in pick(rng, scenes)]
        if category == "style":
            base = without(STYLE, prompt)
            colour = list(PLAIN_COLOURS)[int(rng.integers(len(PLAIN_COLOURS)))]
            edits = [extend(base, suffix.format(colour=colour)) for suffix in STYLE_SUFFIXES.values()]
            edits += [base] if base != prompt else []  # the artwork itself: no style words
            return pick(rng, edits)
        if category == "detail":
            edits = []
            if found is not None:
                name, mods = found[1], found[0].group("mods").lower()
                unplaced = without(POSITION, prompt)
                again = self.named(unplaced)
                if again is not None:
                    end = again[0].end()
                    edits += [
                        tidy(f"{unplaced[:end]} {side}{unplaced[end:]}") for side in ("on the left", "on the right")
                    ]
                    edits = [e for e in edits if e.lower() != prompt.lower()]
                sized = SIZE.sub("", mods) if SIZE.search(mods) else "small " + mods
                pair = found[0].group(0).lower().startswith("two ")
                edits += [put(name, sized), put(name, count=1 if pair else 2)]
            colours = [c for c in PLAIN_COLOURS if c not in prompt.lower()]
            edits += [extend(without(SCENE, prompt), f"on a {c} background") for c in colours]
            return pick(rng, edits)
        raise ValueError(f"unknown category {category!r}")
