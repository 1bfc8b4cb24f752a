"""The gallery index: enrolled templates, cosine search, atomic persistence."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EngineError


@dataclass(frozen=True)
class Match:
    """One identity found by :meth:`Index.search`.

    ``label``: the enrolled identity (e.g. a person id as a string). ``score``:
    cosine similarity in [-1, 1] of the best template of that identity.
    ``template``: row of that template in the index.
    """

    label: str
    score: float
    template: int


class Index:
    """An in-memory matrix of L2-normalised templates with one label each.

    ``kinds`` tags each template (``0`` = as photographed, ``1`` = with a synthetic
    mask) so that callers can match masked probes against masked templates.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.vectors = np.zeros((0, dim), np.float32)
        self.labels = np.zeros((0,), dtype=object)
        self.kinds = np.zeros((0,), np.int8)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def identities(self) -> set[str]:
        """The distinct labels in the index."""
        return set(self.labels.tolist())

    def add(self, label: str, vectors: np.ndarray, kinds: np.ndarray | None = None) -> None:
        """Append templates (``NxD``) for ``label``; rows are L2-normalised on the way in."""
        vectors = np.atleast_2d(np.asarray(vectors, np.float32))
        if vectors.shape[1] != self.dim:
            raise EngineError(f"template dimension {vectors.shape[1]} != index dimension {self.dim}")
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        kinds = np.zeros(len(vectors), np.int8) if kinds is None else np.asarray(kinds, np.int8)
        self.vectors = np.concatenate([self.vectors, vectors])
        self.labels = np.concatenate([self.labels, np.array([str(label)] * len(vectors), dtype=object)])
        self.kinds = np.concatenate([self.kinds, kinds])

    def remove(self, label: str) -> int:
        """Drop every template of ``label``; returns how many were removed."""
        keep = self.labels != str(label)
        removed = int((~keep).sum())
        self.vectors, self.labels, self.kinds = self.vectors[keep], self.labels[keep], self.kinds[keep]
        return removed

    def scores(self, query: np.ndarray, kinds: tuple[int, ...] | None = None) -> np.ndarray:
        """Cosine similarity of ``query`` (D,) to every template (templates of other kinds: -inf)."""
        q = np.asarray(query, np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        s = self.vectors @ q
        if kinds is not None:
            s = np.where(np.isin(self.kinds, kinds), s, -np.inf)
        return s

    def search(self, query: np.ndarray, k: int = 5, kinds: tuple[int, ...] | None = None) -> list[Match]:
        """The ``k`` best identities for ``query``, best first (max over each identity's templates)."""
        if len(self) == 0:
            return []
        s = self.scores(query, kinds)
        order = np.argsort(-s)
        seen: dict[str, Match] = {}
        for i in order:
            if not np.isfinite(s[i]):
                break
            label = self.labels[i]
            if label not in seen:
                seen[label] = Match(label, float(s[i]), int(i))
                if len(seen) == k:
                    break
        return list(seen.values())

    def save(self, path: Path) -> None:
        """Write the index to ``path`` (.npz) atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, vectors=self.vectors, labels=self.labels.astype(str), kinds=self.kinds,
                         dim=np.array(self.dim))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> Index:
        """Read an index written by :meth:`save`."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                index = cls(int(data["dim"]))
                index.vectors = data["vectors"].astype(np.float32)
                index.labels = data["labels"].astype(object)
                index.kinds = data["kinds"].astype(np.int8)
        except (OSError, KeyError, ValueError) as exc:
            raise EngineError(f"cannot read index {path}: {exc}") from exc
        return index
