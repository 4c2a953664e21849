"""The prompt safety filter: refuses clearly unsafe requests, from people and from the LMM alike.

A word-list and pattern filter, on purpose: it runs in microseconds on every prompt and every one of the 25
candidates per turn, needs no model, and its decisions can be read and audited. It aims at requests that are
clearly unsafe for an image generator (sexual content, sexual content involving minors, graphic violence,
hateful symbols and slurs, self-harm), not at every sensitive word: "a nude-colour dress", "a shooting star" and
"a blood-red sunset" pass. Text is normalised before matching (Unicode NFKC, case, zero-width characters,
look-alike digits such as `p0rn`, letters spaced out as `n u d e`), so trivial disguises do not get through.

What is refused gets a polite message that names the kind of content and never repeats the words; the caller logs
the refusal (`LogStore.log_refusal`) with `Verdict.reason`, which does name the rule that matched.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CATEGORY_LABELS: dict[str, str] = {
    "sexual_minors": "sexual content involving minors",
    "sexual": "sexual or explicit content",
    "violence": "graphic violence or gore",
    "hate": "hateful symbols or slurs",
    "self_harm": "self-harm",
}

_MINOR = (
    r"(?:child|children|kids?|minors?|underage|under-age|preteens?|pre-teens?|toddlers?|infants?|teens?|"
    r"teenagers?|teenage|schoolgirls?|schoolboys?|little (?:girls?|boys?)|young (?:girls?|boys?)|lol[iy]|"
    r"lolita|shota|(?:[1-9]|1[0-7])[- ]?(?:years?|yrs?)[- ]?old)"
)
_NUDE_FASHION = (
    r"colou?rs?|colou?red|tones?|shades?|heels?|lipsticks?|dress(?:es)?|shoes?|pumps|sandals|palette|"
    r"beige|pink|make-?up|tights|stockings|nails?|bags?|trench|coats?|boots?|leather|fabric|mesh|"
    r"lining|slip|bra|blouse|skirt|gown|scarf|cardigan|sweater|top"
)
_NUDE = rf"(?<!non )(?<!non-)(?<!non - )\bnude\b(?!\s*-?\s*(?:{_NUDE_FASHION})\b)"
"""'nude' the state, not the fashion colour: refused unless a fashion word follows or 'non-nude' is meant."""
_SEXUAL_FOR_MINORS = (
    rf"(?:sexy|seductive|sensual|provocative|lingerie|erotic\w*|{_NUDE}|naked|nudity|topless|sex|"
    r"sexual\w*|porn\w*|nsfw|lewd|undress\w*|stripping)"
)

PATTERNS: dict[str, list[str]] = {
    # Checked first: the most serious category wins when several match.
    "sexual_minors": [
        rf"\b{_MINOR}\b.{{0,60}}\b{_SEXUAL_FOR_MINORS}\b",
        rf"\b{_SEXUAL_FOR_MINORS}\b.{{0,60}}\b{_MINOR}\b",
        r"\b(?:loli|lolicon|shotacon|jailbait|child porn\w*|cp porn)\b",
    ],
    "sexual": [
        r"\bporn\w*\b",
        r"\bnsfw\b",
        r"\bhentai\b",
        r"\bxxx\b",
        r"\berotic\w*\b",
        r"\bnaked\b(?! mole)",
        r"\bnudity\b",
        r"\bnudes\b",
        r"\btopless\b",
        r"\blewd\b",
        r"\bgenital\w*\b",
        r"\bpenis\b",
        r"\bvagina\w*\b",
        r"\bsex\b",
        r"\bsexual\b",
        r"\bsexually\b",
        r"\bintercourse\b",
        r"\borgasm\w*\b",
        r"\bmasturbat\w*\b",
        r"\bfetish\w*\b",
        r"\bbdsm\b",
        r"\bstrip ?tease\b",
        r"\bonlyfans\b",
        r"\brule ?34\b",
        r"\bundress(?:ed|ing)\b",
        _NUDE,
    ],
    "violence": [
        r"\bgore\b",
        r"\bgory\b",
        r"\bgorecore\b",
        r"\bgruesome\b",
        r"\bdismember\w*\b",
        r"\bdecapitat\w*\b",
        r"\bbehead\w*\b",
        r"\bdisembowel\w*\b",
        r"\bmutilat\w*\b",
        r"\beviscerat\w*\b",
        r"\btortur(?:e|es|ing)\b",
        r"\bmassacre\w*\b",
        r"\b(?:mass|school) shootings?\b",
        r"\bsnuff (?:film|movie|video)s?\b",
        r"\bblood ?bath\b",
        r"\bsevered (?:heads?|limbs?|arms?|legs?|hands?|fingers?)\b",
        r"\bterrorist attacks?\b",
        r"\bkilling (?:a|an|the)? ?(?:child|children|baby|babies|people|person|woman|man)\b",
    ],
    "hate": [
        r"\bnazi\w*\b",
        r"\bswastikas?\b",
        r"\bheil hitler\b",
        r"\bsieg heil\b",
        r"\bkkk\b",
        r"\bku klux klan\b",
        r"\bwhite (?:power|supremac\w*)\b",
        r"\bethnic cleansing\b",
        r"\bgenocide\b",
        r"\bhate symbols?\b",
    ],
    "self_harm": [
        r"\bsuicid\w*\b",
        r"\bself[- ]?harm\w*\b",
        r"\b(?:kill|killing|hang|hanging|hurt|hurting|cut|cutting) (?:myself|yourself|himself|herself|themselves)\b",
        r"\bslit(?:ting)? (?:my |his |her |their )?wrists?\b",
    ],
}

# Slurs, stored rot13-encoded so that reading this file does not mean reading them; decoded once at import.
_ENCODED_SLURS = (
    "avttre",
    "avttref",
    "avttn",
    "avttnf",
    "snttbg",
    "snttbgf",
    "snt",
    "sntf",
    "xvxr",
    "xvxrf",
    "puvax",
    "puvaxf",
    "jrgonpx",
    "jrgonpxf",
    "genaal",
    "genaavrf",
    "fcvp",
    "fcvpf",
    "tbbx",
    "tbbxf",
)
PATTERNS["hate"].append(r"\b(?:" + "|".join(codecs.decode(s, "rot13") for s in _ENCODED_SLURS) + r")\b")

_ZERO_WIDTH = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_LOOKALIKE = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"}
)
_SPACED_OUT = re.compile(r"\b[a-z](?:([\s._\-*])[a-z]){2,}\b")
_SEPARATORS = re.compile(r"[\s._\-*]")


def normalise(text: str) -> str:
    """Unicode NFKC, lower case, zero-width characters removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text).casefold()
    return " ".join(text.split())


def variants(text: str) -> list[str]:
    """The forms of `text` that are matched: as written, with look-alike digits read as letters, and with
    spaced-out letters joined (`n u d e`, `p.o.r.n`)."""
    plain = normalise(text)
    lookalike = plain.translate(_LOOKALIKE)
    joined = _SPACED_OUT.sub(lambda m: _SEPARATORS.sub("", m.group()), lookalike)
    # A spaced-out word after a one-letter word ("a n u d e") is joined with it too: also try without the first.
    joined_after_first = _SPACED_OUT.sub(lambda m: m.group()[0] + " " + _SEPARATORS.sub("", m.group()[2:]), lookalike)
    return list(dict.fromkeys([plain, lookalike, joined, joined_after_first]))


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    category: str | None = None
    """A key of CATEGORY_LABELS when refused."""
    rule: str = ""
    """The pattern that matched (for the log, never shown to the person)."""

    @property
    def reason(self) -> str:
        """What the log store records for a refusal."""
        return "allowed" if self.allowed else f"{self.category}: {self.rule}"

    @property
    def message(self) -> str:
        """A polite refusal for the person, naming the kind of content but not repeating their words."""
        if self.allowed:
            return ""
        return (
            f"Sorry, I can't create images of {CATEGORY_LABELS[self.category]}. "
            "Please try a different idea: an object, a colour, a place or a style."
        )


class SafetyFilter:
    """`check(text)` -> Verdict. `extra` adds patterns (regular expressions) per category, e.g. for a deployment
    that must refuse more; `disabled` switches categories off (e.g. for a research run on synthetic prompts)."""

    def __init__(self, extra: Mapping[str, Iterable[str]] | None = None, disabled: Iterable[str] = ()) -> None:
        unknown = (set(extra or {}) | set(disabled)) - set(CATEGORY_LABELS)
        if unknown:
            raise ValueError(f"unknown safety categories {sorted(unknown)}: use {', '.join(CATEGORY_LABELS)}")
        self.rules: list[tuple[str, re.Pattern]] = []
        for category in CATEGORY_LABELS:
            if category in set(disabled):
                continue
            for pattern in [*PATTERNS[category], *(extra or {}).get(category, ())]:
                self.rules.append((category, re.compile(pattern)))

    def check(self, text: str) -> Verdict:
        if not isinstance(text, str):
            raise TypeError(f"the safety filter checks text, not {type(text).__name__}")
        forms = variants(text)
        for category, rule in self.rules:
            if any(rule.search(form) for form in forms):
                return Verdict(False, category, rule.pattern[:120])
        return Verdict(True)

    def is_safe(self, text: str) -> bool:
        return self.check(text).allowed
