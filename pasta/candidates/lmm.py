"""The LMM candidate generator: a chat model proposes phrases per category, few-shot, in one batched call.

Why this shape: small models (the embedded SmolLM2-135M) drift into prose when asked for 25 prompts at once, but
reliably list a few short phrases after one example. So each of the 5 categories is its own short conversation,
all 5 are generated as one batch, replies are parsed leniently, implausible phrases are dropped, and the
retrieval generator tops up whatever is missing. The user's prompt is quoted as data inside the conversation,
and whatever comes back is treated as text: instruction-like output is discarded, never followed.
"""

from __future__ import annotations

import logging
import re
import time

from pasta.candidates.clean import assemble, extend, split_phrases, words
from pasta.candidates.retrieval import RetrievalGenerator, _check_history
from pasta.contracts import CATEGORIES, Candidate
from pasta.torch_thread import Preempted

log = logging.getLogger(__name__)

SYSTEM = "You improve image prompts. Answer with exactly 5 short phrases separated by ' | '. No sentences."
ASK = {
    "rephrase": "Rephrase",
    "detail": "Add visual details to",
    "style": "Give art styles for",
    "subject": "Give related subjects to",
    "creative": "Give creative settings for",
}
EXAMPLE_PROMPT = "a red dress"
EXAMPLE_REPLY = {
    "rephrase": "a crimson dress | a scarlet gown | a dress in red | a red frock | a vivid red dress",
    "detail": "silk fabric | polka dots | long sleeves | gold buttons | lace trim",
    "style": "watercolor painting | pencil sketch | neon glow | flat vector art | oil painting",
    "subject": "a red coat | a blue skirt | a silk scarf | a red handbag | a wedding gown",
    "creative": "at sunset | on a beach | in a misty forest | on the moon | at a masquerade ball",
}
# Phrases added to the prompt are short; rephrasings and new subjects are whole prompts.
MAX_WORDS = {"rephrase": 24, "detail": 8, "style": 8, "subject": 24, "creative": 10}
_FIRST_PERSON = re.compile(r"\b(i|i'm|i'll|i've|me|my|we|you|your)\b", re.IGNORECASE)


def messages(category: str, prompt: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f'{ASK[category]}: "{EXAMPLE_PROMPT}"'},
        {"role": "assistant", "content": EXAMPLE_REPLY[category]},
        {"role": "user", "content": f'{ASK[category]}: "{prompt}"'},
    ]


def plausible(category: str, phrase: str) -> bool:
    tokens = phrase.lower().split()
    if not tokens or len(tokens) > MAX_WORDS[category] or _FIRST_PERSON.search(phrase):
        return False
    if max(tokens.count(t) for t in set(tokens)) >= 3:  # "cat cat cat", "matching matching matching"
        return False
    # A copied example is a prompt about the example's subject: wrong as a rephrasing or new subject, fine as an
    # added detail, style or setting.
    return category not in ("rephrase", "subject") or phrase not in EXAMPLE_REPLY[category].split(" | ")


def combine(category: str, prompt: str, phrase: str) -> str:
    if category in ("rephrase", "subject"):
        return phrase
    return extend(prompt, phrase)


class LMMGenerator:
    """`CandidateGenerator` over any chat model with `complete_batch(conversations, max_new_tokens)`."""

    name = "lmm"

    def __init__(self, chat, fallback: RetrievalGenerator, max_new_tokens: int = 32) -> None:
        self.chat = chat
        self.fallback = fallback
        self.max_new_tokens = max_new_tokens
        self.last_stats: dict[str, float] = {}

    def propose(self, history: list[str], n: int = 25) -> list[Candidate]:
        return self.propose_many([history], n)[0]

    def propose_many(self, histories: list[list[str]], n: int = 25) -> list[list[Candidate]]:
        """Candidates for several histories from one batched generation (5 conversations each): on 2 CPU cores
        20 conversations decode in about 6 s where 4 batches of 5 take about 10 s."""
        histories = [_check_history(h) for h in histories]
        t0 = time.perf_counter()
        conversations = [messages(c, h[-1]) for h in histories for c in CATEGORIES]
        try:
            replies = self.chat.complete_batch(conversations, self.max_new_tokens)
        except Preempted:  # background work giving way (pasta.torch_thread): not a failure, no fallback
            raise
        except Exception as error:  # a model or endpoint failure must not reach the user: retrieval answers
            log.warning("LMM failed (%s: %s); using retrieval candidates", type(error).__name__, error)
            replies = [""] * len(conversations)
        k = len(CATEGORIES)
        out = [self._candidates(h, replies[i * k : (i + 1) * k], n) for i, h in enumerate(histories)]
        seconds = time.perf_counter() - t0
        self.last_stats = {
            "seconds": seconds,
            "histories": len(histories),
            "from_lmm": sum(c.source == self.name for cs in out for c in cs) / max(1, sum(map(len, out))),
        }
        return out

    def _candidates(self, history: list[str], replies: list[str], n: int) -> list[Candidate]:
        prompt = history[-1]
        proposals = {}
        for category, reply in zip(CATEGORIES, replies):
            phrases = [p for p in split_phrases(reply or "") if plausible(category, p)]
            proposals[category] = [combine(category, prompt, p) for p in phrases if words(p) - words(prompt)]
        query = self.fallback.embed([prompt])[0]
        return assemble(
            prompt,
            proposals,
            n,
            lambda c, k: self.fallback.options(history, c, k, query),
            source=self.name,
            fallback_source=self.fallback.name,
        )
