"""Named artwork for thousands of everyday concepts, from Debian packages: the colour bitmaps of Noto Color Emoji
(`fonts-noto-color-emoji`, SIL OFL) with Unicode's names, groups and subgroups (`unicode-data`: emoji-test.txt) and
CLDR's English keywords (`unicode-cldr-core`). The first layer of the emoji world (issue 18): which emoji are
drawable *subjects*, and each one's 136x128 artwork.

How an emoji becomes a bitmap: a single code point maps to a glyph through the font's cmap; a sequence (a
profession, a family, an animal with a colour) is a ligature in the font's GSUB table; the glyph's CBDT strike
holds a PNG. Subjects leave out what is not a thing to draw: flags, keycaps, components, the Symbols group (signs,
arrows, letters), and skin-tone and gendered variants (one person per role, the gender-neutral one).
"""

from __future__ import annotations

import io
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from PIL import Image

FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
CLDR_ANNOTATIONS = Path("/usr/share/unicode/cldr/common/annotations/en.xml")
INSTALL = "apt-get install fonts-noto-color-emoji unicode-data unicode-cldr-core"

NOT_SUBJECT_GROUPS = {"Component", "Flags", "Symbols"}
NOT_SUBJECT_SUBGROUPS = {"keycap"}
SKIN_TONES = {chr(c) for c in range(0x1F3FB, 0x1F400)}
GENDERED = re.compile(r"^(man|woman|men|women|boy|girl)\b.*|.*\b(man|woman)$")
"""Names of the gendered variants of a role ("woman astronaut", "man gesturing OK", "person: man"); the neutral
one ("astronaut", "person gesturing OK") stays. Words such as "old man" or "man in tuxedo" without a neutral twin
are kept: see `subjects`."""
_LINE = re.compile(r"^([0-9A-F ]+?)\s*;\s*fully-qualified\s*#\s*\S+\s+E[\d.]+\s+(.+)$")


def font_path() -> Path:
    return Path(os.environ.get("PASTA_EMOJI_FONT", FONT))


def emoji_test_path() -> Path:
    return Path(os.environ.get("PASTA_EMOJI_TEST", EMOJI_TEST))


def have_emoji_data() -> bool:
    return font_path().is_file() and emoji_test_path().is_file()


@dataclass(frozen=True)
class Emoji:
    sequence: str
    name: str
    group: str
    subgroup: str
    keywords: tuple[str, ...] = ()


def read_emoji_test(path: Path | None = None) -> list[Emoji]:
    """Every fully-qualified emoji of Unicode's emoji-test.txt, in its order, with group and subgroup."""
    path = path or emoji_test_path()
    if not path.is_file():
        raise FileNotFoundError(f"no emoji list at {path}: {INSTALL} (or set PASTA_EMOJI_TEST)")
    out, group, subgroup = [], "", ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif match := _LINE.match(line):
            sequence = "".join(chr(int(c, 16)) for c in match.group(1).split())
            out.append(Emoji(sequence, match.group(2).strip(), group, subgroup))
    return out


def read_keywords(path: Path = CLDR_ANNOTATIONS) -> dict[str, tuple[str, ...]]:
    """CLDR's English keywords per emoji (without variation selectors); empty where CLDR is not installed."""
    if not path.is_file():
        return {}
    keywords = {}
    for node in ET.parse(path).getroot().iter("annotation"):
        if node.get("type") != "tts" and node.text:
            keywords[node.get("cp", "").replace("\ufe0f", "")] = tuple(k.strip() for k in node.text.split("|"))
    return keywords


class EmojiFont:
    """Noto Color Emoji's bitmaps by emoji sequence."""

    def __init__(self, path: Path | None = None) -> None:
        from fontTools.ttLib import TTFont

        path = path or font_path()
        if not path.is_file():
            raise FileNotFoundError(f"no emoji font at {path}: {INSTALL} (or set PASTA_EMOJI_FONT)")
        self.font = TTFont(path, lazy=True)
        self.cmap = self.font.getBestCmap()

    @cached_property
    def ligatures(self) -> dict[tuple[str, ...], str]:
        """Component glyphs -> ligature glyph, from every GSUB ligature substitution (lookup type 4)."""
        out = {}
        for lookup in self.font["GSUB"].table.LookupList.Lookup:
            if lookup.LookupType != 4:
                continue
            for table in lookup.SubTable:
                for first, ligatures in table.ligatures.items():
                    for ligature in ligatures:
                        out[(first, *ligature.Component)] = ligature.LigGlyph
        return out

    @cached_property
    def strike(self) -> dict:
        return self.font["CBDT"].strikeData[0]

    def glyph(self, sequence: str) -> str | None:
        """The glyph that draws `sequence`, or None when the font has none."""
        for codes in (sequence, sequence.replace("\ufe0f", "")):
            glyphs = tuple(self.cmap.get(ord(c)) for c in codes if ord(c) in self.cmap)
            if len(glyphs) == 1 and len(codes) == 1:
                return glyphs[0] if glyphs[0] in self.strike else None
            if glyphs in self.ligatures:
                return self.ligatures[glyphs]
            if len(glyphs) == 1 and glyphs[0] in self.strike:  # a single code point with a variation selector
                return glyphs[0]
        return None

    def image(self, sequence: str) -> Image.Image:
        """The emoji's colour bitmap (RGBA, 136x128 in Noto Color Emoji)."""
        glyph = self.glyph(sequence)
        if glyph is None:
            raise KeyError(f"the font has no glyph for {sequence!r} ({' '.join(f'{ord(c):X}' for c in sequence)})")
        with Image.open(io.BytesIO(self.strike[glyph].imageData)) as image:
            return image.convert("RGBA")


def subjects(font: EmojiFont | None = None, emoji: list[Emoji] | None = None) -> list[Emoji]:
    """The emoji that are things to draw and that the font draws, one per concept, with CLDR keywords."""
    font = font or EmojiFont()
    emoji = emoji if emoji is not None else read_emoji_test()
    keywords = read_keywords()
    names = {e.name for e in emoji}
    out, seen = [], set()
    for e in emoji:
        if e.group in NOT_SUBJECT_GROUPS or e.subgroup in NOT_SUBJECT_SUBGROUPS:
            continue
        if SKIN_TONES & set(e.sequence) or ":" in e.name:  # "person: beard", "kiss: woman, man"
            continue
        if GENDERED.match(e.name) and _neutral_twins(e.name) & names:
            continue
        if e.name in seen or font.glyph(e.sequence) is None:
            continue
        seen.add(e.name)
        out.append(Emoji(e.sequence, e.name, e.group, e.subgroup, keywords.get(e.sequence.replace("\ufe0f", ""), ())))
    return out


def _neutral_twins(name: str) -> set[str]:
    """Names the gender-neutral version of a gendered emoji may have: "woman astronaut" -> "astronaut";
    "man running" -> "person running"; "women with bunny ears" -> "people with bunny ears"."""
    first, _, rest = name.partition(" ")
    if first in ("man", "woman"):
        return {rest, f"person {rest}"}
    if first in ("men", "women"):
        return {f"people {rest}"}
    if first in ("boy", "girl"):
        return {"child"}
    return {name.rsplit(" ", 1)[0]}
