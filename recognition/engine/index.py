"""The gallery index: enrolled templates, cosine search, atomic persistence."""

from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EngineError
from .files import UNREADABLE, savez_atomic

# Two-stage search for large galleries (measured in bench/speed.py, see docs/performance.md): a
# float32 pass over a PCA projection of the templates (COARSE_DIM of 1024 dimensions, a quarter
# of the memory traffic) picks COARSE_CANDIDATES templates, which are then scored exactly with the
# full vectors. Scores returned are always the exact cosine similarities; below COARSE_MIN
# templates (and whenever the candidates hold fewer than k identities) the search is exhaustive.
COARSE_MIN = 20_000
COARSE_DIM = 256
COARSE_CANDIDATES = 512
_PCA_SAMPLE = 8192


@dataclass(frozen=True)
class Match:
    """One identity found by :meth:`Index.search`.

    ``label``: the enrolled identity (e.g. a person id as a string). ``score``:
    cosine similarity in [-1, 1] of the best template of that identity, less that
    template's margin (non-zero only for templates aggregated from several photos).
    ``template``: row of that template in the index.
    """

    label: str
    score: float
    template: int


class Index:
    """An in-memory matrix of L2-normalised templates with one label each.

    ``kinds`` tags each template (``0`` = as photographed, ``1`` = with a synthetic
    mask) so that callers can match masked probes against masked templates. ``margins``
    (``None``: all zero) is subtracted from each template's similarity: a template averaged
    from several photos is closer to everyone and must clear the threshold by more.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.vectors = np.zeros((0, dim), np.float32)
        self.labels = np.zeros((0,), dtype=object)
        self.kinds = np.zeros((0,), np.int8)
        self.margins: np.ndarray | None = None
        self._coarse: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (source, basis, projected)
        self._coarse_lock = threading.Lock()
        self._kind_masks: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._label_rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def identities(self) -> set[str]:
        """The distinct labels in the index."""
        return set(self.labels.tolist())

    def add(self, label: str, vectors: np.ndarray, kinds: np.ndarray | None = None,
            margins: np.ndarray | None = None) -> None:
        """Append templates (``NxD``) for ``label``; rows are L2-normalised on the way in.
        ``margins``: one per row, subtracted from its similarities (default 0)."""
        vectors = np.atleast_2d(np.asarray(vectors, np.float32))
        if vectors.shape[1] != self.dim:
            raise EngineError(f"template dimension {vectors.shape[1]} != index dimension {self.dim}")
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        kinds = np.zeros(len(vectors), np.int8) if kinds is None else np.asarray(kinds, np.int8)
        if kinds.shape != (len(vectors),) or (margins is not None and np.shape(margins) != (len(vectors),)):
            # a short array would broadcast in a search's kind filter instead of failing
            raise EngineError(f"{len(vectors)} templates need as many kinds and margins")
        if margins is not None or self.margins is not None:
            old = np.zeros(len(self), np.float32) if self.margins is None else self.margins
            new = np.zeros(len(vectors), np.float32) if margins is None else np.asarray(margins, np.float32)
            self.margins = np.concatenate([old, new])
        self.vectors = np.concatenate([self.vectors, vectors])
        self.labels = np.concatenate([self.labels, np.array([str(label)] * len(vectors), dtype=object)])
        self.kinds = np.concatenate([self.kinds, kinds])

    def remove(self, label: str) -> int:
        """Drop every template of ``label``; returns how many were removed."""
        return self.keep(self.labels != str(label))

    def keep_labels(self, labels: set[str]) -> int:
        """Drop every template whose label is not in ``labels``; returns how many were removed. One
        pass: :meth:`remove` per label copied the whole index each time (7 s for 1,750 people at
        57,000 templates, under the index writers' lock)."""
        return self.keep(np.fromiter((label in labels for label in self.labels), bool, len(self)))

    def keep(self, rows: np.ndarray) -> int:
        """Keep only the templates where ``rows`` (a boolean mask) is true; returns how many went."""
        removed = int((~rows).sum())
        self.vectors, self.labels, self.kinds = self.vectors[rows], self.labels[rows], self.kinds[rows]
        if self.margins is not None:
            self.margins = self.margins[rows]
        return removed

    def scores(self, query: np.ndarray, kinds: tuple[int, ...] | None = None) -> np.ndarray:
        """Cosine similarity of ``query`` (D,) to every template less its margin (templates of
        other kinds: -inf)."""
        q = self._query(query)
        s = self.vectors @ q
        if self.margins is not None:
            s = s - self.margins
        if kinds is not None:
            s = np.where(np.isin(self.kinds, kinds), s, -np.inf)
        return s

    def _query(self, query: np.ndarray) -> np.ndarray:
        """``query`` as a unit float32 vector; a vector of another size (made by another version of
        the recognizer) is an :class:`EngineError`, not a numpy shape error."""
        q = np.asarray(query, np.float32)
        if q.shape != (self.dim,):
            raise EngineError(f"query of shape {q.shape} for an index of dimension {self.dim}")
        return q / max(float(np.linalg.norm(q)), 1e-12)

    def search(self, query: np.ndarray, k: int = 5, kinds: tuple[int, ...] | None = None) -> list[Match]:
        """The ``k`` best identities for ``query``, best first (max over each identity's templates).

        Large indexes (``COARSE_MIN`` templates or more) shortlist templates on a compact PCA
        projection first and score the shortlist exactly (see the module constants).
        """
        if len(self) == 0:
            return []
        q = self._query(query)
        if len(self) >= COARSE_MIN and self.dim > COARSE_DIM:
            found = self._search_coarse(q, k, kinds)
            if found is not None:
                return found
        s = self.scores(q, kinds)
        return self._best(s, np.arange(len(s)), k) or []

    def label_score(self, query: np.ndarray, label: str, kinds: tuple[int, ...] | None = None) -> float | None:
        """The score :meth:`search` gives ``label`` for ``query``, found or not: the cosine similarity
        of its best template of ``kinds``, less that template's margin (``None``: it has none)."""
        rows = self._rows_of(str(label))
        if kinds is not None:
            rows = rows[np.isin(self.kinds[rows], kinds)]
        if len(rows) == 0:
            return None
        s = self.vectors[rows] @ self._query(query)
        if self.margins is not None:
            s = s - self.margins[rows]
        return float(s.max())

    def holds(self, label: str) -> bool:
        """Whether ``label`` has templates here (one comparison over the labels, its rows cached for
        :meth:`label_score`; no set of every label built)."""
        return len(self._rows_of(label)) > 0

    def _rows_of(self, label: str) -> np.ndarray:
        """The rows of ``label``'s templates, cached while ``self.labels`` is the same array (a kiosk
        asks for the same person's at every frame while their welcome stands)."""
        cached = self._label_rows.get(label)
        if cached is not None and cached[0] is self.labels:
            return cached[1]
        rows = np.flatnonzero(self.labels == label)
        if len(self._label_rows) >= 64:
            self._label_rows.clear()
        self._label_rows[label] = (self.labels, rows)
        return rows

    def _best(self, s: np.ndarray, rows: np.ndarray, k: int, complete: bool = True) -> list[Match] | None:
        """Walk ``rows`` by descending score ``s`` keeping each identity's best template. With
        ``complete=False`` (a shortlist) ``None`` means fewer than ``k`` identities were found."""
        m = min(len(s), max(64, 16 * k))
        order = np.argpartition(-s, m - 1)[:m] if m < len(s) else np.arange(len(s))
        order = order[np.argsort(-s[order], kind="stable")]
        seen: dict[str, Match] = {}
        for i in order:
            if not np.isfinite(s[i]):
                return list(seen.values())
            label = self.labels[rows[i]]
            if label not in seen:
                seen[label] = Match(label, float(s[i]), int(rows[i]))
                if len(seen) == k:
                    return list(seen.values())
        if m < len(s):  # the top m rows held fewer than k identities: sort everything
            return self._best_full(s, rows, k) if complete else None
        return list(seen.values()) if complete or len(s) == len(self) else None

    def _best_full(self, s: np.ndarray, rows: np.ndarray, k: int) -> list[Match]:
        seen: dict[str, Match] = {}
        for i in np.argsort(-s, kind="stable"):
            if not np.isfinite(s[i]):
                break
            label = self.labels[rows[i]]
            if label not in seen:
                seen[label] = Match(label, float(s[i]), int(rows[i]))
                if len(seen) == k:
                    break
        return list(seen.values())

    def _search_coarse(self, q: np.ndarray, k: int, kinds: tuple[int, ...] | None) -> list[Match] | None:
        basis, projected = self._coarse_tables()
        coarse = projected @ (basis @ q)
        if self.margins is not None:
            coarse = coarse - self.margins
        if kinds is not None:
            coarse = np.where(self._kind_mask(tuple(kinds)), coarse, -np.inf)
        m = min(COARSE_CANDIDATES, len(coarse))
        rows = np.argpartition(-coarse, m - 1)[:m]
        rows = rows[np.isfinite(coarse[rows])]
        if len(rows) == 0:
            return []
        exact = self.vectors[rows] @ q
        if self.margins is not None:
            exact = exact - self.margins[rows]
        return self._best(exact, rows, k, complete=False)

    def _kind_mask(self, kinds: tuple[int, ...]) -> np.ndarray:
        """``np.isin(self.kinds, kinds)``, cached while ``self.kinds`` is the same array."""
        cached = self._kind_masks.get(kinds)
        if cached is not None and cached[0] is self.kinds:
            return cached[1]
        mask = np.isin(self.kinds, kinds)
        self._kind_masks[kinds] = (self.kinds, mask)
        return mask

    def _coarse_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """``(basis COARSE_DIMxD, projected NxCOARSE_DIM)``, rebuilt when the templates change."""
        cached = self._coarse
        if cached is not None and cached[0] is self.vectors:
            return cached[1], cached[2]
        with self._coarse_lock:
            cached = self._coarse
            if cached is not None and cached[0] is self.vectors:
                return cached[1], cached[2]
            vectors = self.vectors
            rng = np.random.default_rng(0)
            sample = vectors[rng.choice(len(vectors), min(_PCA_SAMPLE, len(vectors)), replace=False)]
            # uncentred PCA: keeps dot products (not distances) best in few dimensions
            _, vecs = np.linalg.eigh(sample.T @ sample)
            basis = np.ascontiguousarray(vecs[:, ::-1][:, :COARSE_DIM].T, np.float32)
            projected = np.ascontiguousarray(vectors @ basis.T, np.float32)
            self._coarse = (vectors, basis, projected)
            return basis, projected

    def unit_rows(self) -> np.ndarray:
        """Which templates are finite unit vectors (as every template must be)."""
        with np.errstate(invalid="ignore", over="ignore"):
            norms = np.linalg.norm(self.vectors, axis=1) if len(self.vectors) else np.zeros(0)
            return np.isfinite(self.vectors).all(axis=1) & (np.abs(norms - 1) < 1e-2)

    def save(self, path: Path) -> str:
        """Write the index to ``path`` (.npz) atomically (temp file + rename); returns the file's
        SHA-256 (hex), which an index version records and checks when it is loaded."""
        if not self.unit_rows().all():  # every kiosk would refuse to load it: never write one
            raise EngineError(f"refusing to write index {path}: some templates are not finite unit vectors")
        extra = {} if self.margins is None else {"margins": self.margins}
        savez_atomic(path, vectors=self.vectors, labels=self.labels.astype(str), kinds=self.kinds,
                     dim=np.array(self.dim), **extra)
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    @classmethod
    def load(cls, path: Path, content: bytes | None = None) -> Index:
        """Read an index written by :meth:`save`: the file at ``path``, or its ``content`` already
        read (and checked against a digest: not read a second time)."""
        try:
            source = io.BytesIO(content) if content is not None else Path(path)
            with np.load(source, allow_pickle=False) as data:
                index = cls(int(data["dim"]))
                index.vectors = data["vectors"].astype(np.float32)
                index.labels = data["labels"].astype(object)
                index.kinds = data["kinds"].astype(np.int8)
                if "margins" in data.files:  # indexes written before margins existed have none
                    index.margins = data["margins"].astype(np.float32)
        except (*UNREADABLE, TypeError) as exc:
            raise EngineError(f"cannot read index {path}: {exc}") from exc
        # a file whose arrays disagree would mis-score (or fail mid-search) instead of failing here
        n = len(index.vectors) if index.vectors.ndim == 2 else -1
        if (n < 0 or index.vectors.shape[1] != index.dim or np.shape(index.labels) != (n,)
                or np.shape(index.kinds) != (n,) or (index.margins is not None and index.margins.shape != (n,))):
            raise EngineError(f"cannot read index {path}: its vectors, labels, kinds and margins disagree")
        # templates are unit vectors: anything else (a damaged or forged file) would score above 1
        if not index.unit_rows().all():
            raise EngineError(f"cannot read index {path}: its templates are not unit vectors")
        # margins are small non-negative numbers (gallery.aggregate_margin): a negative one would
        # raise every score against its template, above 1 too
        if index.margins is not None and not (np.isfinite(index.margins).all() and (index.margins >= 0).all()
                                              and (index.margins < 1).all()):
            raise EngineError(f"cannot read index {path}: its margins are not between 0 and 1")
        if len(index) >= COARSE_MIN and index.dim > COARSE_DIM:
            index._coarse_tables()  # now (off the kiosks' event loop), not on the first search
        return index
