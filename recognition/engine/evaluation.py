"""Verification and identification metrics (LFW protocol, ROC, open-set identification)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class Pair:
    """One line of an LFW-style pairs file: two image paths, same person or not, fold."""

    a: Path
    b: Path
    same: bool
    fold: int


def find_image(images: Path, name: str, number: int) -> Path:
    """``images/Name/Name_000N.<ext>`` with any common extension (first that exists)."""
    stem = images / name / f"{name}_{number:04d}"
    for ext in IMAGE_EXTS + tuple(e.upper() for e in IMAGE_EXTS):
        # appended, not with_suffix: a name with a dot ("Mary.Smith") would lose its end
        if (p := stem.parent / f"{stem.name}{ext}").exists():
            return p
    return stem.parent / f"{stem.name}.jpg"  # reported as missing by the caller


def stratified_folds(same: np.ndarray | list[bool], n_folds: int = 10) -> np.ndarray:
    """Fold numbers that give every fold its share of same and of different pairs, in file order
    within each class. Consecutive chunks would not: LFW's ``pairsDevTest.txt`` lists all its same
    pairs first, so its first folds held only same pairs and the last only different ones (each
    fold's "accuracy" was then a true-accept or true-reject rate, and their spread was not a spread
    over folds)."""
    same = np.asarray(same, bool)
    folds = np.zeros(len(same), np.int64)
    for cls in (True, False):
        idx = np.flatnonzero(same == cls)
        folds[idx] = np.arange(len(idx)) * n_folds // max(len(idx), 1)
    return folds


def parse_pairs(images: Path, pairs_file: Path, n_folds: int = 10) -> list[Pair]:
    """Read an LFW ``pairs.txt``-format file (the ``folds count`` header is optional).

    With a header ``F N`` the file is F folds of N same then N different pairs; otherwise (no
    header, or one number as in ``pairsDevTest.txt``) the folds are :func:`stratified_folds`.
    Raises ``ValueError`` for a line that is not a pair.
    """
    # UTF-8, its byte-order mark left out (Windows' Notepad writes one: "bad pairs line: \ufeff500")
    lines = [ln.split() for ln in Path(pairs_file).read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    per_fold = None
    if lines and all(re.fullmatch(r"\d+", t) for t in lines[0]) and len(lines[0]) <= 2:
        header = [int(t) for t in lines.pop(0)]
        if len(header) == 2:
            n_folds, per_fold = header[0], 2 * header[1]
    rows = []
    for t in lines:
        numbers = t[1:] if len(t) == 3 else t[1::2] if len(t) == 4 else []
        if not numbers or not all(n.isdigit() for n in numbers):   # an image number that is not one too
            raise ValueError(f"bad pairs line: {' '.join(t)}")
        if len(t) == 3:
            rows.append((find_image(images, t[0], int(t[1])), find_image(images, t[0], int(t[2])), True))
        else:
            rows.append((find_image(images, t[0], int(t[1])), find_image(images, t[2], int(t[3])), False))
    if per_fold is not None and per_fold * n_folds == len(rows):
        return [Pair(a, b, s, i // per_fold) for i, (a, b, s) in enumerate(rows)]
    folds = stratified_folds([r[2] for r in rows], n_folds)
    return [Pair(a, b, s, int(f)) for (a, b, s), f in zip(rows, folds, strict=True)]


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising accuracy (``score >= t`` means same person)."""
    order = np.argsort(scores)
    s, y = scores[order], same[order].astype(np.int64)
    # accuracy when the threshold sits just above s[i-1]: negatives below, positives at or above
    neg_below = np.concatenate([[0], np.cumsum(1 - y)])
    pos_above = y.sum() - np.concatenate([[0], np.cumsum(y)])
    acc = neg_below + pos_above
    i = int(np.argmax(acc))
    if i == 0:
        return float(s[0] - 1e-6)
    if i == len(s):
        return float(s[-1] + 1e-6)
    return float((s[i - 1] + s[i]) / 2)


def lfw_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[float, float, list[float]]:
    """10-fold protocol: threshold chosen on the other folds, tested on each; ``(mean, std, thresholds)``."""
    accs, thresholds = [], []
    for f in np.unique(folds):
        train, test = folds != f, folds == f
        if train.sum() == 0:
            train = test
        t = best_threshold(scores[train], same[train])
        thresholds.append(t)
        accs.append(float(((scores[test] >= t) == same[test]).mean()))
    return float(np.mean(accs)), float(np.std(accs)), thresholds


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tie correction)."""
    pos, neg = scores[same], scores[~same]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    i = 0
    while i < len(sorted_v):  # average ranks over ties
        j = i
        while j + 1 < len(sorted_v) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """The lowest threshold whose false-accept rate on ``impostor`` scores is at most ``far``."""
    if len(impostor) == 0:
        return float("nan")
    s = np.sort(impostor)[::-1]
    k = int(np.floor(far * len(s)))  # at most k impostors may score >= t
    return float(np.nextafter(s[k], np.inf)) if k < len(s) else float(s[-1])


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """True-accept rate at the threshold giving false-accept rate ``far``."""
    t = threshold_at_far(scores[~same], far)
    return float((scores[same] >= t).mean()) if same.any() else float("nan")


def verification_metrics(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    """Accuracy (LFW protocol), AUC and TAR at FAR 1e-2 / 1e-3 of a set of scored pairs."""
    scores, same, folds = np.asarray(scores, float), np.asarray(same, bool), np.asarray(folds)
    acc, std, thresholds = lfw_accuracy(scores, same, folds)
    return {"accuracy": acc, "accuracy_std": std, "auc": roc_auc(scores, same),
            "tar_at_far_1e-2": tar_at_far(scores, same, 1e-2),
            "tar_at_far_1e-3": tar_at_far(scores, same, 1e-3),
            "threshold_mean": float(np.mean(thresholds)), "n_pairs": int(len(scores))}


def identification_metrics(top_label: list[str | None], top_score: np.ndarray, truth: list[str],
                           known: np.ndarray, thresholds: np.ndarray) -> dict:
    """Open-set identification metrics.

    ``top_label``/``top_score``: each probe's best gallery identity and score (``None``
    and ``-inf`` when no face was found). ``truth``: the probe's identity; ``known``:
    whether it is enrolled. ``thresholds``: the product's threshold for each probe.
    """
    top_score = np.asarray(top_score, float)
    known = np.asarray(known, bool)
    correct = np.array([lab == t for lab, t in zip(top_label, truth, strict=True)], dtype=bool) & known
    unknown_scores = top_score[~known]
    # no stranger among the probes: no FPIR to set a threshold by, so no FNIR at it (an infinite
    # threshold reported every enrolled probe missed, 1.0, beside a rank-1 of 1.0)
    t1 = threshold_at_far(unknown_scores, 1e-2) if len(unknown_scores) else float("nan")
    accepted = top_score >= np.asarray(thresholds, float)
    measured = known.any() and (~known).any()
    return {
        "rank1": float(correct[known].mean()) if known.any() else float("nan"),
        "fnir_at_fpir_1e-2": float(1 - (correct & (top_score >= t1))[known].mean()) if measured else float("nan"),
        "threshold_at_fpir_1e-2": t1,
        "fpir_at_threshold": float(accepted[~known].mean()) if (~known).any() else float("nan"),
        "fnir_at_threshold": float(1 - (correct & accepted)[known].mean()) if known.any() else float("nan"),
        "n_known_probes": int(known.sum()),
        "n_unknown_probes": int((~known).sum()),
    }
