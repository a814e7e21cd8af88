"""Text search over names, addresses and settlements, in Ukrainian or Latin script, tolerating typos.

Everything is compared in Latin script: Ukrainian words are transliterated by the official KMU-55 rules
(`translitua`), so "Хрещатик", "Khreshchatyk" and "khreshchatik" meet. Each query word is looked up in the
vocabulary of indexed words: exactly, as a prefix (a word being typed), or within a few edits (`rapidfuzz`). A
point's score is the mean, over the query's words, of its best-matching word's similarity (0..100).
"""

import re
import sys
from bisect import bisect_left
from functools import lru_cache

import numpy as np
from rapidfuzz import fuzz, process
from translitua import translit

WORD = re.compile(r"\w+")
APOSTROPHE = re.compile("['’ʼ`]")  # KMU-55 leaves apostrophes out: "зв'язок" is "zviazok"
CYRILLIC = re.compile(r"[а-яіїєґё]")
PREFIX_SCORE = 95.0  # a query word that starts an indexed word: someone still typing it
MIN_PREFIX_LEN = 3
MIN_FUZZY_LEN = 4
MAX_FUZZY_MATCHES = 200  # vocabulary words a query word may match by similarity


@lru_cache(maxsize=65536)
def latin(word: str) -> str:
    """A lower-case word in Latin script: Ukrainian by KMU-55, anything else as it is; one copy of each."""
    return sys.intern(translit(word).lower() if CYRILLIC.search(word) else word)


def words(text: str) -> list[str]:
    """The Latin-script words of a text, in order."""
    return [latin(w) for w in WORD.findall(APOSTROPHE.sub("", text.lower()))]


def fuzzy_cutoff(word: str) -> float:
    """The least similarity a vocabulary word needs to match: about one edit in five letters, two in ten."""
    return 75.0 if len(word) < 8 else 72.0


class TextIndex:
    """Which slots hold which words, and the vocabulary the query words are matched against."""

    def __init__(self) -> None:
        # Lists, not sets: a slot's words change rarely, and 17,000 points hold some 200,000 postings.
        self._postings: dict[str, list[int]] = {}
        self._slot_words: dict[int, tuple[str, ...]] = {}
        self._vocabulary: list[str] | None = None
        self._sorted: list[str] | None = None
        self._arrays: dict[str, np.ndarray] = {}

    def put(self, slot: int, texts: tuple[str, ...]) -> None:
        """Index the slot under the words of its texts, replacing what it had."""
        new = set(map(latin, WORD.findall(APOSTROPHE.sub("", " ".join(texts).lower()))))
        old = set(self._slot_words.get(slot, ()))
        if new == old:
            return
        for word in old - new:
            self._postings[word].remove(slot)
            self._arrays.pop(word, None)
        for word in new - old:
            if word not in self._postings:
                self._postings[word] = []
                self._vocabulary = self._sorted = None
            self._postings[word].append(slot)
            self._arrays.pop(word, None)
        if new:
            self._slot_words[slot] = tuple(new)
        else:
            self._slot_words.pop(slot, None)

    def remove(self, slot: int) -> None:
        """Forget the slot (a point that became hidden or retired)."""
        self.put(slot, ())

    def scores(self, query: str, size: int) -> np.ndarray:
        """Each slot's score for the query (0..100), as an array of the given size."""
        query_words = list(dict.fromkeys(words(query)))
        total = np.zeros(size, dtype=np.float32)
        if not query_words:
            return total
        for word in query_words:
            best = np.zeros(size, dtype=np.float32)
            for match, similarity in self._matches(word).items():
                slots = self._slots(match)
                if len(slots):
                    best[slots] = np.maximum(best[slots], similarity)
            total += best
        return total / len(query_words)

    def _matches(self, word: str) -> dict[str, float]:
        """Vocabulary words matching a query word, with their similarity."""
        found: dict[str, float] = {}
        if word in self._postings:
            found[word] = 100.0
        if len(word) >= MIN_PREFIX_LEN:
            for candidate in self._starting_with(word):
                found.setdefault(candidate, PREFIX_SCORE)
        if len(word) >= MIN_FUZZY_LEN:
            for candidate, similarity, _ in process.extract(
                word,
                self._words(),
                scorer=fuzz.ratio,
                score_cutoff=fuzzy_cutoff(word),
                limit=MAX_FUZZY_MATCHES,
            ):
                if similarity > found.get(candidate, 0.0):
                    found[candidate] = float(similarity)
        return found

    def _words(self) -> list[str]:
        if self._vocabulary is None:
            self._vocabulary = list(self._postings)
        return self._vocabulary

    def _starting_with(self, prefix: str) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self._postings)
        start = bisect_left(self._sorted, prefix)
        found = []
        for candidate in self._sorted[start:]:
            if not candidate.startswith(prefix):
                break
            if candidate != prefix:
                found.append(candidate)
        return found

    def _slots(self, word: str) -> np.ndarray:
        array = self._arrays.get(word)
        if array is None:
            array = self._arrays[word] = np.array(self._postings.get(word, ()), dtype=np.int64)
        return array
