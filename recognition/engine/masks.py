"""Synthetic face masks drawn onto faces from FaceMesh landmarks.

Two sources, kept apart on purpose:

* the product's own renderer, :func:`render_mask`: surgical, N95, KN95 and cloth masks
  drawn procedurally (nothing third-party ships). It augments enrolment photos and
  training data.
* MaskTheFace templates, :func:`load_templates` and :func:`warp_template`: RGBA images
  read at run time from a directory outside the repository and warped onto the face by
  their six anchor points, for benchmarks only (masks the product has never seen).

How the renderer works: the 3D landmarks give the head's own frame (eyes left-right,
forehead-chin down, depth), in which the face is seen frontally. The mask is a grid of
nodes in that frame: its top edge runs over the nose bridge (between FaceMesh 6 and
197) and across the cheeks below the eyes, its sides follow the face oval, its bottom
runs under the jaw and chin. Each node takes the face's depth there, then the fabric is
"stretched" (a convex envelope, the way cloth spans the nose tip and the chin instead
of following the mouth) and shaped per style (a cup for N95, two flat panels for KN95).
Pleats, seams, hems and fabric are drawn in the mask's own ``(u, v)`` texture space and
lit (Lambert, bump-mapped) with a light whose direction and strength are estimated from
the visible upper face. The nodes go back to the image by the inverse head rotation and
are rasterised far-to-near (so a turned head hides the far cheek behind the nose) at 2x,
then downsampled, which anti-aliases every edge.
"""

from __future__ import annotations

import configparser
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .files import write_atomic
from .landmarks import CHIN, FACE_OVAL, FOREHEAD, LEFT_EYE, RIGHT_EYE

__all__ = [
    "IMAGE_SUFFIXES", "MASK_STYLES", "MaskColor", "MaskReport", "MaskStyle", "Template", "apply_mask",
    "choose_template", "image_rng", "iter_images", "load_templates", "mask_directory", "render_mask",
    "six_points", "template_view", "to_dlib68", "transform_landmarks", "warp_template",
]

Color = tuple[int, int, int]  # B, G, R


@dataclass(frozen=True)
class MaskColor:
    """One colourway of a style. ``base`` and ``accent`` are BGR 0-255; ``pattern`` is
    ``"plain"``, ``"stripes"``, ``"dots"``, ``"plaid"``, ``"floral"`` or ``"camo"``."""

    name: str
    base: Color
    pattern: str = "plain"
    accent: Color | None = None
    loops: Color = (236, 238, 240)


@dataclass(frozen=True)
class MaskStyle:
    """A mask style of the product renderer and its colourways (``colors`` by name)."""

    name: str
    description: str
    colors: dict[str, MaskColor] = field(default_factory=dict)


def _palette(*colors: MaskColor) -> dict[str, MaskColor]:
    return {c.name: c for c in colors}


_BLACK_LOOPS: Color = (38, 38, 40)

MASK_STYLES: dict[str, MaskStyle] = {
    "surgical": MaskStyle(
        "surgical",
        "Rectangular three-ply mask: three horizontal pleats that open in the middle and converge at "
        "the sides, bound side edges, top and bottom hems, a nose wire, ear loops.",
        _palette(MaskColor("blue", (214, 178, 128)), MaskColor("light_blue", (226, 200, 160)),
                 MaskColor("white", (236, 238, 238)), MaskColor("green", (176, 200, 150)),
                 MaskColor("black", (44, 42, 42), loops=_BLACK_LOOPS),
                 MaskColor("pink", (196, 178, 236)))),
    "n95": MaskStyle(
        "n95",
        "Moulded rounded cup standing off the face, a vertical centre seam, an embossed rim, an "
        "aluminium nose clip under the fabric, two head straps.",
        _palette(MaskColor("white", (232, 236, 238)), MaskColor("off_white", (214, 226, 232)),
                 MaskColor("white_blue_straps", (234, 236, 236), loops=(170, 120, 60)))),
    "kn95": MaskStyle(
        "kn95",
        "Folded two-panel mask: a sharp vertical centre crease that peaks over the nose and points "
        "under the chin, welded dotted edges and seam, ear loops.",
        _palette(MaskColor("white", (238, 240, 240)), MaskColor("black", (40, 40, 42), loops=_BLACK_LOOPS),
                 MaskColor("grey", (150, 150, 152)))),
    "cloth": MaskStyle(
        "cloth",
        "Fabric mask, contoured (curved centre seam) or pleated, woven texture, plain or patterned.",
        _palette(MaskColor("navy", (90, 50, 34), loops=_BLACK_LOOPS), MaskColor("black", (36, 36, 38),
                                                                              loops=_BLACK_LOOPS),
                 MaskColor("grey", (128, 126, 124)), MaskColor("red", (48, 44, 176)),
                 MaskColor("khaki", (120, 160, 178)), MaskColor("denim", (150, 110, 70)),
                 MaskColor("stripes", (60, 40, 30), "stripes", (220, 220, 225)),
                 MaskColor("dots", (100, 60, 40), "dots", (235, 235, 240)),
                 MaskColor("plaid", (50, 50, 160), "plaid", (40, 40, 40)),
                 MaskColor("floral", (150, 90, 40), "floral", (190, 170, 245)),
                 MaskColor("camo", (70, 110, 96), "camo", (34, 48, 44)))),
}

# dlib's 68-point layout from FaceMesh. The jaw (dlib 0-16, evenly spaced from the subject's
# right ear round the chin to the left ear) is FaceMesh's contour resampled by arc length,
# each half separately so that dlib 8 is the chin (FaceMesh 152); the other 51 points map
# index to index: brows 17-26, nose 27-35, eyes 36-47 (from each outer corner), mouth 48-67.
JAW_CONTOUR_RIGHT = (127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152)
JAW_CONTOUR_LEFT = (152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356)
DLIB68_FROM_MESH: tuple[int, ...] = (
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    78, 82, 13, 312, 308, 317, 14, 87,
)  # dlib 17-67

_RIGHT_LOWER_LID = (33, 7, 163, 144, 145, 153, 154, 155, 133)
_LEFT_LOWER_LID = (362, 382, 381, 380, 374, 373, 390, 249, 263)
_SKIN_PATCHES = (151, 9, 108, 337, 69, 299, 116, 345, 6)
_NOSE_BRIDGE_TOP, _NOSE_BRIDGE_LOW = 6, 197
_GRID_COLS, _GRID_ROWS = 41, 29


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Frame:
    """The head's own frame: ``local = (p - origin) @ axes.T``, ``p = origin + local @ axes``.

    Local X runs from the subject's right eye to the left eye, Y from forehead to chin,
    Z away from the camera; the unit is the image pixel and ``iod`` the eye distance.
    """

    origin: np.ndarray
    axes: np.ndarray
    iod: float
    local: np.ndarray

    def to_image(self, local: np.ndarray) -> np.ndarray:
        """``...x3`` local points to image ``(x, y, depth)``."""
        return self.origin + local @ self.axes


def _face_frame(points: np.ndarray) -> _Frame:
    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[0] != 468 or pts.shape[1] not in (2, 3):
        raise ValueError(f"expected FaceMesh points of shape 468x3 (or 468x2), got {pts.shape}")
    has_depth = pts.shape[1] == 3 and float(np.ptp(pts[:, 2])) > 1e-6
    if pts.shape[1] == 2:
        pts = np.concatenate([pts, np.zeros((468, 1))], 1)
    right, left = pts[list(RIGHT_EYE)].mean(0), pts[list(LEFT_EYE)].mean(0)
    ex = left - right
    iod = float(np.linalg.norm(ex))
    if iod < 1e-3:
        raise ValueError("degenerate landmarks (the eyes coincide)")
    ex /= iod
    down = pts[CHIN] - pts[FOREHEAD]
    ey = down - ex * float(down @ ex)
    ey /= max(float(np.linalg.norm(ey)), 1e-9)
    ez = np.cross(ex, ey)
    axes = np.stack([ex, ey, ez])
    origin = (right + left) / 2
    local = (pts - origin) @ axes.T
    if not has_depth:
        # No depth given: a generic face (cheeks receding like a cylinder, the nose forward).
        half = max(float(np.abs(local[list(FACE_OVAL), 0]).max()), iod * 0.5)
        local[:, 2] = 0.8 * iod * (local[:, 0] / half) ** 2
        for i, k in ((1, 0.3), (4, 0.28), (5, 0.22), (195, 0.16), (197, 0.1), (6, 0.06)):
            local[i, 2] -= k * iod
    return _Frame(origin, axes, iod, local)


def _depth_at(frame: _Frame, xy: np.ndarray) -> np.ndarray:
    """Face depth (local Z) at local ``(X, Y)`` points: Gaussian-weighted local linear fit
    of the 468 landmarks (smooth inside, linear extrapolation under the chin)."""
    q = xy.reshape(-1, 2).astype(np.float64)
    p = frame.local[:, :2]
    z = frame.local[:, 2]
    sigma = 0.09 * frame.iod
    d2 = np.maximum((q * q).sum(1)[:, None] + (p * p).sum(1)[None, :] - 2 * q @ p.T, 0)
    # scaling a row of weights does not change its fit: relative to the nearest landmark, so
    # that points far outside the face still get (nearest-dominated) weights
    w = np.exp(-(d2 - d2.min(1, keepdims=True)) / (2 * sigma ** 2))
    # weighted moments, then the 3x3 normal equations of z ~ c0 + c1 (px - qx) + c2 (py - qy)
    px, py = p[:, 0], p[:, 1]
    m = w @ np.stack([np.ones_like(px), px, py, px * px, px * py, py * py, z, z * px, z * py], 1)
    s0, sx, sy, sxx, sxy, syy, sz, szx, szy = m.T
    qx, qy = q[:, 0], q[:, 1]
    ex, ey = sx - qx * s0, sy - qy * s0
    exx = sxx - 2 * qx * sx + qx * qx * s0
    eyy = syy - 2 * qy * sy + qy * qy * s0
    exy = sxy - qx * sy - qy * sx + qx * qy * s0
    ridge = 1e-3 * s0 * sigma ** 2
    ata = np.stack([np.stack([s0, ex, ey], -1), np.stack([ex, exx + ridge, exy], -1),
                    np.stack([ey, exy, eyy + ridge], -1)], -2)
    atz = np.stack([sz, szx - qx * sz, szy - qy * sz], -1)
    coef = np.linalg.solve(ata, atz[..., None])[..., 0]
    return coef[:, 0].reshape(xy.shape[:-1])


def _lowest_crossing(poly: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """For each vertical line ``X = xs[i]``, the largest Y where it crosses the closed polygon."""
    a, b = poly, np.roll(poly, -1, 0)
    x1, y1, x2, y2 = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
    dx = np.where(np.abs(x2 - x1) < 1e-9, 1e-9, x2 - x1)
    t = (xs[:, None] - x1[None]) / dx[None]
    inside = (t >= 0) & (t <= 1)
    y = np.where(inside, y1[None] + t * (y2 - y1)[None], -np.inf)
    return y.max(1)


def _lower_hull(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The lower convex envelope of ``z(x)`` (x increasing), evaluated at ``x``."""
    hull: list[int] = []
    for i in range(len(x)):
        while len(hull) >= 2:
            i0, i1 = hull[-2], hull[-1]
            cross = (x[i1] - x[i0]) * (z[i] - z[i0]) - (z[i1] - z[i0]) * (x[i] - x[i0])
            if cross <= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    return np.interp(x, x[hull], z[hull])


@dataclass(frozen=True)
class _Shape:
    """Per-style geometry: where the edges sit (in eye distances) and how the fabric stands."""

    top_t: tuple[float, float]       # top centre between FaceMesh 6 (0) and 197 (1)
    side_drop: tuple[float, float]   # top edge at the face sides, below the eye line
    top_power: float                 # shape of the top edge from the nose to the sides
    chin_margin: tuple[float, float]  # how far the bottom edge hangs below the chin
    tension: float                   # 1: fabric spans nose and chin; 0: follows the skin
    lid_margin: float = 0.16         # never above the lower eyelids plus this


_SHAPES = {
    "surgical": _Shape((0.3, 0.75), (0.38, 0.5), 0.5, (0.12, 0.22), 1.0),
    "n95": _Shape((0.25, 0.6), (0.45, 0.6), 1.6, (0.12, 0.2), 1.0),
    "kn95": _Shape((0.15, 0.45), (0.5, 0.62), 1.0, (0.3, 0.4), 1.0, 0.18),
    "cloth": _Shape((0.2, 0.6), (0.38, 0.5), 0.7, (0.12, 0.2), 0.85),
}


@dataclass
class _Grid:
    """Mask nodes: ``local`` (rows x cols x 3), ``s`` in [-1, 1] across (0 on the nose line),
    ``v`` in [0, 1] from the top edge to the bottom edge."""

    local: np.ndarray
    s: np.ndarray
    v: np.ndarray


def _mask_grid(frame: _Frame, style: str, rng: np.random.Generator) -> _Grid:
    shape = _SHAPES[style]
    d = frame.iod
    L = frame.local
    oval = L[list(FACE_OVAL), :2]
    x_mid = float((L[_NOSE_BRIDGE_TOP, 0] + L[CHIN, 0] + L[2, 0]) / 3)
    x_min, x_max = float(oval[:, 0].min()), float(oval[:, 0].max())
    top_t = rng.uniform(*shape.top_t)
    y_c = float((1 - top_t) * L[_NOSE_BRIDGE_TOP, 1] + top_t * L[_NOSE_BRIDGE_LOW, 1])
    y_side = float(rng.uniform(*shape.side_drop)) * d
    y_side = max(y_side, y_c + 0.1 * d)
    margin = float(rng.uniform(*shape.chin_margin)) * d

    xs = np.linspace(x_min + 1e-3 * d, x_max - 1e-3 * d, 400)
    s_all = np.where(xs < x_mid, (xs - x_mid) / (x_mid - x_min), (xs - x_mid) / (x_max - x_mid))
    a = np.abs(s_all)
    if style == "kn95":  # straight edges down from a rounded peak
        f = np.sqrt(a ** 2 + 0.05 ** 2) - 0.05
    else:
        f = 1 - (1 - a) ** (1 / shape.top_power) if shape.top_power < 1 else a ** shape.top_power
    top = y_c + (y_side - y_c) * f
    floor = np.full_like(xs, -np.inf)
    for lid in (_RIGHT_LOWER_LID, _LEFT_LOWER_LID):  # keep clear of the eyes
        lp = L[list(lid), :2]
        order = np.argsort(lp[:, 0])
        lx, ly = lp[order, 0], lp[order, 1]
        inner, outer = (lx[-1], lx[0]) if lx.mean() < x_mid else (lx[0], lx[-1])
        lo, hi = (outer - 0.12 * d, inner + 0.03 * d) if lx.mean() < x_mid else (inner - 0.03 * d, outer + 0.12 * d)
        span = (xs > lo) & (xs < hi)
        floor = np.where(span, np.interp(xs, lx, ly) + shape.lid_margin * d, floor)
    # lower the whole edge (keeping its shape) until it clears the eyes, then clamp what is left
    need = np.where(np.isfinite(floor) & (f > 0.25), (floor - y_c) / np.maximum(f, 0.25), -np.inf)
    if np.isfinite(need).any() and need.max() > y_side - y_c:
        y_side = y_c + min(float(need.max()), 0.75 * d - y_c)
        top = y_c + (y_side - y_c) * f
    top = np.maximum(top, floor)
    k = 9 if style != "kn95" else 3
    top = np.convolve(np.pad(top, k, mode="edge"), np.ones(2 * k + 1) / (2 * k + 1), "valid")
    bottom = _lowest_crossing(oval, xs) + margin * np.clip(1 - s_all ** 2, 0, 1) ** 0.7
    ok = np.nonzero(bottom - top > 0.25 * d)[0]
    if ok.size < 2:
        raise ValueError("landmarks too degenerate to place a mask")
    x_r, x_l = xs[ok[0]], xs[ok[-1]]

    cols = np.linspace(x_r, x_l, _GRID_COLS)
    top_c = np.interp(cols, xs, top)
    bot_c = np.maximum(np.interp(cols, xs, bottom), top_c + 0.25 * d)
    # rows inside the mask run between a much smoother top line and the bottom, so that
    # pleats and patterns do not copy the nose's bump
    k2 = 40
    smooth_top = np.convolve(np.pad(top, k2, mode="edge"), np.ones(2 * k2 + 1) / (2 * k2 + 1), "valid")
    smooth_c = np.interp(cols, xs, smooth_top)
    v = np.linspace(0.0, 1.0, _GRID_ROWS)[:, None] * np.ones((1, _GRID_COLS))
    X = np.ones((_GRID_ROWS, 1)) * cols[None, :]
    top_eff = top_c[None, :] + (smooth_c - top_c)[None, :] * np.clip(v / 0.3, 0, 1)
    Y = np.maximum.accumulate(top_eff + v * (bot_c[None, :] - top_eff), axis=0)
    Z = skin = _depth_at(frame, np.stack([X, Y], -1))
    s = np.where(X < x_mid, (X - x_mid) / (x_mid - x_r), (X - x_mid) / (x_l - x_mid))

    if shape.tension > 0:
        Zt = Z.copy()
        for _ in range(2):  # stretched fabric: convex towards the camera, down and across
            for j in range(_GRID_COLS):
                Zt[:, j] = _lower_hull(Y[:, j], Zt[:, j])
            for i in range(_GRID_ROWS):
                Zt[i, :] = _lower_hull(X[i, :], Zt[i, :])
        Z = Z + shape.tension * (Zt - Z)
    Z = cv2.GaussianBlur(Z.astype(np.float32), (5, 5), 1.0).astype(np.float64)
    Z = np.minimum(Z, skin)  # never inside the face
    # the top edge presses on the skin (nose wire); lifted fabric there would rise over the
    # eyes in the picture of a head tilted back
    Z = skin + (Z - skin) * _smoothstep(0.0, 0.3, v)
    grid = _Grid(np.stack([X, Y, Z], -1), s, v)
    _STYLE_DEFORM[style](grid, frame, rng)
    return grid


def _deform_none(grid: _Grid, frame: _Frame, rng: np.random.Generator) -> None:
    return None


def _n95_radius(s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """0 at the cup's centre, 1 on its rim (a rounded superellipse in ``(s, v)``)."""
    p = 2.6
    return (np.abs(s / 0.9) ** p + np.abs((v - 0.5) / 0.5) ** p) ** (1 / p)


def _deform_n95(grid: _Grid, frame: _Frame, rng: np.random.Generator) -> None:
    r = np.clip(_n95_radius(grid.s, grid.v), 0, 1)
    height = frame.iod * rng.uniform(0.16, 0.24)
    grid.local[..., 2] -= height * (1 - r ** 2) ** 0.6 * (0.35 + 0.65 * _smoothstep(0.0, 0.5, grid.v))


def _deform_kn95(grid: _Grid, frame: _Frame, rng: np.random.Generator) -> None:
    Z = grid.local[..., 2]
    X = grid.local[..., 0]
    j0 = int(np.argmin(np.abs(grid.s[0])))
    stand = frame.iod * rng.uniform(0.06, 0.12)
    for i in range(Z.shape[0]):  # two flat panels from the crease to the sides
        crease = Z[i, max(j0 - 1, 0):j0 + 2].min() - stand * (1 - abs(2 * grid.v[i, 0] - 1) ** 3)
        for sl in (slice(0, j0 + 1), slice(j0, Z.shape[1])):
            xs, zs = X[i, sl], Z[i, sl]
            end = 0 if sl.start == 0 else -1
            t = (xs - xs[end]) / (X[i, j0] - xs[end] + 1e-9)
            panel = zs[end] + t * (crease - zs[end])
            Z[i, sl] = np.minimum(zs, panel)


def _deform_cloth(grid: _Grid, frame: _Frame, rng: np.random.Generator) -> None:
    rows, cols = grid.s.shape
    noise = cv2.GaussianBlur(rng.normal(0, 1, (rows, cols)).astype(np.float32), (0, 0), 2.0)
    noise /= max(float(noise.std()), 1e-6)
    edge = np.clip(1 - np.abs(grid.s), 0, 1) * np.clip(4 * grid.v * (1 - grid.v), 0, 1)
    grid.local[..., 2] -= frame.iod * 0.012 * noise * edge


_STYLE_DEFORM: dict[str, Callable[[_Grid, _Frame, np.random.Generator], None]] = {
    "surgical": _deform_none, "n95": _deform_n95, "kn95": _deform_kn95, "cloth": _deform_cloth,
}


# --------------------------------------------------------------------------- texture


@dataclass
class _TexCtx:
    """Per-texel maps, ``H x W``: ``s``, ``v`` as in :class:`_Grid`, ``x``, ``y`` position
    along the mask's surface in eye distances, ``px`` texels per eye distance, ``ss``
    texels per image pixel (about)."""

    s: np.ndarray
    v: np.ndarray
    x: np.ndarray
    y: np.ndarray
    px: float
    ss: float = 1.0


@dataclass
class _Surface:
    """What a style paints: ``albedo`` (HxWx3 BGR 0-1), ``height`` (in eye distances),
    ``alpha`` (0-1 coverage), ``ao`` (ambient occlusion 0-1) and ``gloss``."""

    albedo: np.ndarray
    height: np.ndarray
    alpha: np.ndarray
    ao: np.ndarray
    gloss: float = 0.03
    loops: str = "ear"  # "ear" loops or "head" straps
    loop_rows: tuple[float, float] = (0.08, 0.88)  # where they leave the side edges (v)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Unit-variance smooth noise with correlation length ``sigma`` texels."""
    n = rng.normal(0, 1, shape).astype(np.float32)
    if sigma > 0.3:
        n = cv2.GaussianBlur(n, (0, 0), sigma)
    return n / max(float(n.std()), 1e-6)


def _aa_inside(f: np.ndarray, width: float = 1.0) -> np.ndarray:
    """Anti-aliased coverage of ``f <= 0`` with a ramp of about ``width`` texels."""
    gy, gx = np.gradient(f)
    g = np.sqrt(gx ** 2 + gy ** 2) + 1e-9
    return np.clip(0.5 - f / g / width, 0, 1)


def _border_alpha(h: int, w: int, width: float = 1.2) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.minimum(np.minimum(xx, w - 1 - xx), np.minimum(yy, h - 1 - yy))
    return np.clip((dist + 0.5) / width, 0, 1)


def _color(c: Color, jitter: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(c, np.float32) / 255.0 * jitter, 0, 1)


def _stitches(coord: np.ndarray, along: np.ndarray, center: float, px: float, width: float,
              period: float) -> np.ndarray:
    """A dashed stitch line at ``coord == center`` (units: eye distances)."""
    line = np.clip(1 - np.abs(coord - center) * px / max(width * px, 0.8), 0, 1)
    dash = (np.sin(along / period * 2 * np.pi) > -0.2).astype(np.float32)
    return line * dash


def _tex_surgical(ctx: _TexCtx, color: MaskColor, rng: np.random.Generator) -> _Surface:
    s, v, px = ctx.s, ctx.v, ctx.px
    h, w = s.shape
    a = np.abs(s)
    height = np.zeros_like(s)
    ao = np.ones_like(s)
    light = np.ones_like(s)
    spread = 0.55 + 0.45 * np.clip(1 - a ** 2, 0, 1)  # pleats open in the middle, converge at the sides
    period = rng.uniform(0.16, 0.19)
    amp = rng.uniform(0.035, 0.05) * np.clip(1 - a ** 4, 0, 1)
    fade = np.clip(1 - a ** 6, 0, 1)
    for c in (-1.0, 0.0, 1.0):
        center = 0.5 + (c * period + rng.uniform(-0.012, 0.012)) * spread
        width = 0.13 * spread
        fold_tex = np.maximum(width * (h - 1), 1e-3)  # texels across one fold
        p = (v - center) / width  # one fold: the fabric rises, then steps down under the fold's edge
        rise = _smoothstep(-0.5, 0.45, p) * (1 - _smoothstep(0.5, 0.5 + 2.5 / fold_tex, p))
        height += amp * rise
        below = p - 0.5
        shadow = np.where((below > 0) & (below < 1.0), np.exp(-np.maximum(below, 0) / 0.22), 0.0)
        ao *= 1 - rng.uniform(0.1, 0.18) * shadow * fade
        crest = np.exp(-((0.5 - p) / 0.12) ** 2) * (p < 0.5)
        light *= 1 + 0.05 * crest * fade
    bind = 1 - 0.06 * rng.uniform(0.8, 1.2)
    side = _smoothstep(bind - 0.01, bind + 0.01, a)
    hem = 1 - _smoothstep(0.045, 0.06, v) * (1 - _smoothstep(0.94, 0.955, v))
    height = height * (1 - side) * (1 - hem) + 0.01 * (side + hem)
    wire = np.exp(-((v - 0.025) * px / max(0.012 * px, 1.0)) ** 2) * (a < 0.3)
    height += 0.012 * wire
    stitch = np.maximum(_stitches(a, v * 3, bind - 0.012, px, 0.006, 0.035),
                        np.maximum(_stitches(v, s * 3, 0.055, px, 0.006, 0.035),
                                   _stitches(v, s * 3, 0.945, px, 0.006, 0.035)))
    ao *= 1 - 0.18 * stitch
    ao *= 1 - 0.1 * np.exp(-((a - bind) * px / 1.5) ** 2)
    fibre = 1 + 0.03 * _noise(rng, (h, w), 0.5 * ctx.ss) + 0.02 * _noise(rng, (h, w), max(px * 0.15, 1))
    emboss_px = 0.028 * px / ctx.ss  # a fine diamond emboss, only where it is at least ~3 pixels wide
    if emboss_px > 2.5:
        t = 2 * np.pi / 0.028
        diamond = np.abs(np.sin((ctx.x + ctx.y) * t / 2)) * np.abs(np.sin((ctx.x - ctx.y) * t / 2))
        fibre -= 0.035 * min((emboss_px - 2.5) / 2, 1.0) * (diamond < 0.08) * (1 - np.maximum(side, hem))
    albedo = _color(color.base, (fibre * light)[..., None])
    albedo *= (1 - 0.04 * np.maximum(side, hem))[..., None]
    alpha = _border_alpha(h, w)
    return _Surface(albedo, height, alpha, ao, gloss=0.035)


def _tex_n95(ctx: _TexCtx, color: MaskColor, rng: np.random.Generator) -> _Surface:
    s, v, px = ctx.s, ctx.v, ctx.px
    h, w = s.shape
    r = _n95_radius(s, v)
    alpha = _aa_inside(r - 1.0) * _border_alpha(h, w)
    rim = _smoothstep(0.9, 0.93, r)
    height = 0.012 * rim + 0.004 * np.sin(r * px * 0.02 * 2 * np.pi) * rim
    seam = np.exp(-(ctx.x * px / max(0.01 * px, 0.8)) ** 2) * (r < 0.93)
    height += 0.01 * seam
    clip = (np.abs(s) < 0.32) & (v > 0.05) & (v < 0.12)
    clip_f = cv2.GaussianBlur(clip.astype(np.float32), (0, 0), 0.8)
    height += 0.008 * clip_f
    ao = 1 - 0.2 * seam - 0.12 * rim * (1 - rim) * 4
    fibre = 1 + 0.035 * _noise(rng, (h, w), 0.6) + 0.012 * _noise(rng, (h, w), max(px * 0.04, 1))
    albedo = _color(color.base, fibre[..., None])
    albedo *= (1 - 0.025 * clip_f)[..., None]
    albedo *= (1 - 0.05 * rim)[..., None]
    return _Surface(albedo, height, alpha, ao, gloss=0.05, loops="head", loop_rows=(0.3, 0.72))


def _kn95_bottom(s: np.ndarray) -> np.ndarray:
    return 1 - 0.42 * np.abs(s) ** 1.15


def _tex_kn95(ctx: _TexCtx, color: MaskColor, rng: np.random.Generator) -> _Surface:
    s, v, px = ctx.s, ctx.v, ctx.px
    h, w = s.shape
    a = np.abs(s)
    f_bottom = (v - _kn95_bottom(s)) * 0.9  # roughly in units of the mask height
    f_side = (a - 0.97) * 0.9
    alpha = _aa_inside(f_bottom) * _aa_inside(f_side) * _border_alpha(h, w)
    # distance to the outline in eye distances (approx.) for the welded edge band
    hgt = max(float(ctx.y.max() - ctx.y.min()), 1e-6)
    edge = np.minimum.reduce([-f_bottom / 0.9 * hgt, v * hgt, (0.97 - a) * float(np.abs(ctx.x).max())])
    band = (edge < 0.05).astype(np.float32)
    dots = ((np.sin(ctx.x * 2 * np.pi / 0.022) * np.sin(ctx.y * 2 * np.pi / 0.022)) > 0.55).astype(np.float32)
    crease_d = np.abs(ctx.x - float(np.interp(0.0, s[h // 2], ctx.x[h // 2])))
    seam = (crease_d < 0.018).astype(np.float32)
    height = 0.004 * band * dots + 0.004 * seam * dots
    crease_line = np.exp(-(crease_d * px / 1.0) ** 2)
    ao = 1 - 0.2 * band * dots - 0.15 * seam * dots - 0.25 * crease_line
    ao *= 1 - 0.12 * np.exp(-(np.abs(edge - 0.05) * px / 1.0) ** 2)
    for sx in (-0.93, 0.93):  # loop welds at the corners
        for vy in (0.1, 0.8):
            cx = float(np.interp(sx, s[int(vy * (h - 1))], ctx.x[int(vy * (h - 1))]))
            cy = float(ctx.y[int(vy * (h - 1)), int(np.argmin(np.abs(s[int(vy * (h - 1))] - sx)))])
            dd = np.sqrt((ctx.x - cx) ** 2 + (ctx.y - cy) ** 2)
            weld = np.exp(-(dd / 0.025) ** 4)
            height += 0.006 * weld
            ao *= 1 - 0.12 * weld
    fibre = 1 + 0.03 * _noise(rng, (h, w), 0.6) + 0.02 * _noise(rng, (h, w), max(px * 0.1, 1))
    albedo = _color(color.base, fibre[..., None])
    return _Surface(albedo, height, alpha, ao, gloss=0.045, loop_rows=(0.12, 0.5))


def _pattern(ctx: _TexCtx, color: MaskColor, rng: np.random.Generator) -> np.ndarray:
    """Pattern weight 0-1 (0 = base colour, 1 = accent) for a cloth colourway."""
    x, y, px = ctx.x, ctx.y, ctx.px
    kind = color.pattern
    if kind == "stripes":
        ang = rng.choice([0.0, np.pi / 4, -np.pi / 4, np.pi / 2])
        t = x * np.cos(ang) + y * np.sin(ang)
        period = rng.uniform(0.08, 0.16)
        return _smoothstep(-0.5 / (px * period), 0.5 / (px * period), np.sin(t / period * 2 * np.pi) - 0.3)
    if kind == "dots":
        period = rng.uniform(0.16, 0.24)
        gx = x / period
        gy = y / period
        gx = gx + 0.5 * (np.floor(gy + 0.5) % 2)  # staggered rows
        dist = np.sqrt((gx - np.round(gx)) ** 2 + (gy - np.round(gy)) ** 2) * period
        return _aa_inside((dist - period * 0.24) * px)
    if kind == "plaid":
        period = rng.uniform(0.16, 0.26)
        bx = (np.sin(x / period * 2 * np.pi) > 0.3).astype(np.float32)
        by = (np.sin(y / period * 2 * np.pi) > 0.3).astype(np.float32)
        thin = (np.abs(np.sin(x / period * 4 * np.pi)) < 0.08) | (np.abs(np.sin(y / period * 4 * np.pi)) < 0.08)
        return cv2.GaussianBlur(np.clip(0.45 * bx + 0.45 * by + 0.3 * thin, 0, 1).astype(np.float32), (0, 0), 0.6)
    if kind == "floral":
        out = np.zeros_like(x)
        n = int(rng.integers(22, 34))
        xs = rng.uniform(x.min(), x.max(), n)
        ys = rng.uniform(y.min(), y.max(), n)
        sizes = rng.uniform(0.06, 0.11, n)
        rot = rng.uniform(0, 2 * np.pi, n)
        for cx, cy, r0, th in zip(xs, ys, sizes, rot, strict=True):
            dx, dy = x - cx, y - cy
            rr = np.sqrt(dx ** 2 + dy ** 2)
            ang = np.arctan2(dy, dx) + th
            petals = r0 * (0.55 + 0.45 * np.abs(np.cos(2.5 * ang)))
            out = np.maximum(out, _aa_inside((rr - petals) * px))
            out = np.where(rr < r0 * 0.22, 0.35, out)  # flower centres in between
        return out
    if kind == "camo":
        n1 = _noise(rng, x.shape, px * 0.1)
        n2 = _noise(rng, x.shape, px * 0.08)
        return np.clip(0.5 * _smoothstep(0.2, 0.35, n1) + 0.5 * _smoothstep(0.4, 0.55, n2), 0, 1)
    return np.zeros_like(x)


def _tex_cloth(ctx: _TexCtx, color: MaskColor, rng: np.random.Generator) -> _Surface:
    s, v, px = ctx.s, ctx.v, ctx.px
    h, w = s.shape
    a = np.abs(s)
    corner = (np.abs(s / 0.98) ** 4 + np.abs((v - 0.5) / 0.5) ** 6) ** (1 / 4)
    alpha = _aa_inside((corner - 1) * 0.5 * px * 0.5) * _border_alpha(h, w)
    weave_p = max(0.012, 2.2 / px)
    weave = np.sin(ctx.x / weave_p * np.pi) * np.sin(ctx.y / weave_p * np.pi)
    height = 0.002 * weave
    ao = 1 - 0.05 * weave - 0.12 * np.exp(-((corner - 0.955) * px * 0.5) ** 2)
    contoured = rng.random() < 0.6
    if contoured:  # a centre seam from the nose to the chin
        seam_d = np.abs(s)
        seam = np.exp(-(seam_d * float(np.abs(ctx.x).max()) * px / 1.2) ** 2)
        ao *= 1 - 0.3 * seam
        height += 0.008 * np.exp(-(seam_d * float(np.abs(ctx.x).max()) * px / 3) ** 2)
    else:  # two soft pleats
        for c in (0.4, 0.62):
            p = (v - c) / 0.12
            height += 0.02 * np.clip(p + 0.5, 0, 1) * (p < 0.5) * np.clip(1 - a ** 4, 0, 1)
            ao *= 1 - 0.25 * np.exp(-((p - 0.5) * 0.12 * px / 1.5) ** 2) * np.clip(1 - a ** 4, 0, 1)
    hem_line = np.exp(-((corner - 0.93) * px * 0.5 / 0.8) ** 2) * (np.sin((s + v) * px * 0.3) > 0)
    ao *= 1 - 0.15 * hem_line
    fibre = 1 + 0.05 * _noise(rng, (h, w), 0.5) + 0.03 * _noise(rng, (h, w), max(px * 0.08, 1))
    base = _color(color.base, np.ones(1, np.float32))
    albedo = np.broadcast_to(base, (h, w, 3)).copy()
    if color.pattern != "plain" and color.accent is not None:
        wgt = _pattern(ctx, color, rng)[..., None]
        if color.pattern == "camo":
            mid = np.array([0.36, 0.5, 0.56], np.float32)  # tan
            albedo = base * (1 - wgt) + np.where(wgt > 0.7, _color(color.accent, np.ones(1, np.float32)), mid) * wgt
        else:
            albedo = base * (1 - wgt) + _color(color.accent, np.ones(1, np.float32)) * wgt
    albedo = np.clip(albedo * fibre[..., None], 0, 1)
    return _Surface(albedo.astype(np.float32), height, alpha, ao, gloss=0.015, loop_rows=(0.15, 0.8))


_STYLE_TEXTURE: dict[str, Callable[[_TexCtx, MaskColor, np.random.Generator], _Surface]] = {
    "surgical": _tex_surgical, "n95": _tex_n95, "kn95": _tex_kn95, "cloth": _tex_cloth,
}


# --------------------------------------------------------------------------- light


@dataclass(frozen=True)
class _Light:
    direction: np.ndarray  # unit vector from the surface to the light, camera frame (z away)
    white: float           # image level a white surface facing the light would have (0-255)
    tint: np.ndarray       # BGR multipliers (colour cast of the light)


def _luma(img: np.ndarray) -> np.ndarray:
    return img[..., 0] * 0.114 + img[..., 1] * 0.587 + img[..., 2] * 0.299


def _estimate_light(image: np.ndarray, points: np.ndarray, frame: _Frame, rng: np.random.Generator) -> _Light:
    """Estimate the light from the visible upper face (the mask will hide the rest)."""
    h, w = image.shape[:2]
    d = frame.iod
    r = max(int(round(0.07 * d)), 1)

    def patch(idx: int) -> np.ndarray:
        x, y = int(round(points[idx, 0])), int(round(points[idx, 1]))
        if not (0 <= x < w and 0 <= y < h):
            return np.zeros((0, 3), np.float32)
        return image[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1].reshape(-1, 3).astype(np.float32)

    skin = [patch(i) for i in _SKIN_PATCHES]
    skin_px = np.concatenate(skin) if skin else np.zeros((0, 3), np.float32)
    eye_px = []
    for eye in (RIGHT_EYE, LEFT_EYE):
        ring = _RIGHT_EYE_RING if eye is RIGHT_EYE else _LEFT_EYE_RING
        poly = np.round(points[list(ring), :2]).astype(np.int32)
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [poly], 1)
        eye_px.append(image[m > 0].astype(np.float32))
    eyes = np.concatenate(eye_px) if eye_px else np.zeros((0, 3), np.float32)

    estimates = []
    if len(skin_px) > 8:
        estimates.append(np.percentile(_luma(skin_px), 90) / 0.72)
    if len(eyes) > 12:
        lum = _luma(eyes)
        estimates.append(np.percentile(lum, 92) / 0.8)
    # the brightest things around the face (collars, backgrounds) are often near white
    pts = points[:, :2]
    c, half = pts.mean(0), (pts.max(0) - pts.min(0)).max()
    x0, y0 = np.clip((c - 1.2 * half).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip((c + 1.2 * half).astype(int) + 1, 1, [w, h])
    around = image[y0:y1, x0:x1]
    if around.size >= 300:
        estimates.append(np.percentile(_luma(around.reshape(-1, 3).astype(np.float32)), 98) / 0.95)
    white = float(np.clip(np.median(estimates) if estimates else 200.0, 45.0, 262.0))

    tint = np.ones(3, np.float32)
    if len(eyes) > 12:
        bright = eyes[_luma(eyes) >= np.percentile(_luma(eyes), 75)]
        if len(bright):
            c = bright.mean(0) + 1.0
            tint = np.clip(1 + 0.35 * (c / c.mean() - 1), 0.93, 1.07).astype(np.float32)

    def side_level(idx: Sequence[int]) -> float:
        vals = [np.median(_luma(p)) for p in (patch(i) for i in idx) if len(p)]
        return float(np.mean(vals)) if vals else 0.0

    right, left = side_level((116, 117, 50, 69)), side_level((345, 346, 280, 299))
    lx = 0.0 if right + left < 1 else float(np.clip(1.8 * (left - right) / (left + right), -0.7, 0.7))
    # lx > 0: the subject's left is brighter; the light comes from the local +X side. Light is
    # rarely exactly frontal, and a little side light is what shows a mask's folds.
    lx += float(rng.normal(0, 0.12))
    if abs(lx) < 0.2:
        lx = 0.2 if lx >= 0 else -0.2
    local_dir = np.array([lx, -0.35, -1.0])
    direction = local_dir @ frame.axes
    return _Light(direction / np.linalg.norm(direction), white, tint)


# --------------------------------------------------------------------------- rendering


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(a.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def _rasterize(xy: np.ndarray, depth: np.ndarray, tex_w: int, tex_h: int,
               canvas: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Texel coordinates for each canvas pixel (``-1`` where no mask): triangles drawn far
    to near so the nearest surface wins."""
    rows, cols = depth.shape
    idx = np.arange(rows * cols).reshape(rows, cols)
    a, b, c, e = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    tris = np.concatenate([np.stack([a, b, c], 1), np.stack([c, b, e], 1)])
    flat_xy = xy.reshape(-1, 2)
    tu, tv = np.meshgrid(np.linspace(0, tex_w - 1, cols), np.linspace(0, tex_h - 1, rows))
    flat_uv = np.stack([tu.ravel(), tv.ravel()], 1)
    order = np.argsort(-depth.reshape(-1)[tris].mean(1), kind="stable")
    ids = np.full(canvas, -1, np.int32)
    fixed = np.round(flat_xy * 16).astype(np.int32)
    for k in order:
        cv2.fillConvexPoly(ids, fixed[tris[k]], int(k), lineType=cv2.LINE_8, shift=4)
    src = np.concatenate([flat_xy[tris], np.ones((len(tris), 3, 1))], 2)       # K x 3 x 3
    dst = flat_uv[tris]                                                          # K x 3 x 2
    det = np.linalg.det(src)
    bad = np.abs(det) < 1e-8
    src[bad] += np.array([[0, 0, 0], [1e-3, 0, 0], [0, 1e-3, 0]])
    coef = np.linalg.solve(src, dst)                                            # K x 3 x 2
    ys, xs = np.nonzero(ids >= 0)
    k = ids[ys, xs]
    map_x = np.full(canvas, -10.0, np.float32)
    map_y = np.full(canvas, -10.0, np.float32)
    map_x[ys, xs] = xs * coef[k, 0, 0] + ys * coef[k, 1, 0] + coef[k, 2, 0]
    map_y[ys, xs] = xs * coef[k, 0, 1] + ys * coef[k, 1, 1] + coef[k, 2, 1]
    return map_x, map_y


_RIGHT_EYE_RING = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
_LEFT_EYE_RING = (362, 398, 384, 385, 386, 387, 388, 466, 263, 249, 390, 373, 374, 380, 381, 382)


def _eye_keep_out(points: np.ndarray, to_canvas: Callable[[np.ndarray], np.ndarray], shape: tuple[int, int],
                  margin: float) -> np.ndarray:
    """1 everywhere except over the eyes (grown by ``margin`` canvas pixels, feathered): a
    last guarantee that no mask, loop or shadow ever covers an eye."""
    keep = np.zeros(shape, np.uint8)
    for ring in (_RIGHT_EYE_RING, _LEFT_EYE_RING):
        poly = np.round(to_canvas(points[list(ring), :2]) * 16).astype(np.int32)
        cv2.fillPoly(keep, [poly], 1, cv2.LINE_8, 4)
    if not keep.any():
        return np.ones(shape, np.float32)
    k = max(int(round(margin)), 1)
    keep = cv2.dilate(keep, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    soft = cv2.GaussianBlur(keep.astype(np.float32), (0, 0), max(margin / 3, 0.7))
    return np.clip(1 - 2 * soft, 0, 1).astype(np.float32)


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _grid_at(values: np.ndarray, row: float, col: float) -> np.ndarray:
    """Bilinear lookup of a ``rows x cols x k`` grid at a fractional position."""
    r0 = int(np.clip(np.floor(row), 0, values.shape[0] - 2))
    c0 = int(np.clip(np.floor(col), 0, values.shape[1] - 2))
    fr, fc = row - r0, col - c0
    top = values[r0, c0] * (1 - fc) + values[r0, c0 + 1] * fc
    bottom = values[r0 + 1, c0] * (1 - fc) + values[r0 + 1, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr


def _loop_curves(grid: _Grid, frame: _Frame, alpha: np.ndarray, surf: _Surface) -> list[np.ndarray]:
    """Ear loops (or head straps) as local-frame polylines from the mask's side edge towards
    the ears, only on the sides of the head that face the camera."""
    d = frame.iod
    L = frame.local
    rows, cols = grid.s.shape
    h, w = alpha.shape
    curves = []
    for side, ear_idx in ((-1, 234), (1, 454)):
        outward = frame.axes[0] * side
        if outward[2] > 0.3:  # this side of the head faces away from the camera
            continue
        ear = L[ear_idx].copy()
        ear[0] += side * 0.05 * d
        ear[2] += 0.45 * d
        ear_y = (-0.1, 0.9) if surf.loops == "head" else (0.02, 0.6)
        for v_mask, y_ear in zip(surf.loop_rows, ear_y, strict=True):
            covered = np.nonzero(alpha[int(round(v_mask * (h - 1)))] > 0.5)[0]
            if covered.size == 0:
                continue
            texel = covered[0] + 2 if side < 0 else covered[-1] - 2  # start just under the edge
            start = _grid_at(grid.local, v_mask * (rows - 1), texel / max(w - 1, 1) * (cols - 1))
            end = ear.copy()
            end[1] = y_ear * d
            ctrl = (start + end) / 2 + np.array([side * 0.12 * d, 0, 0.1 * d])
            curves.append(_bezier(start, ctrl, end))
    return curves


def _pick(rng: np.random.Generator, items: Sequence) -> object:
    return items[int(rng.integers(len(items)))]


def _resolve_style(style: str | None, color: str | Color | MaskColor | None,
                   rng: np.random.Generator) -> tuple[str, MaskColor]:
    name = style if style is not None else str(_pick(rng, list(MASK_STYLES)))
    key = name.lower()
    if key not in MASK_STYLES:
        raise ValueError(f"unknown mask style {style!r}; choose from {sorted(MASK_STYLES)}")
    palette = MASK_STYLES[key].colors
    if color is None:
        chosen = palette[str(_pick(rng, list(palette)))]
    elif isinstance(color, MaskColor):
        chosen = color
    elif isinstance(color, str):
        if color not in palette:
            raise ValueError(f"unknown colour {color!r} for {key}; choose from {sorted(palette)}")
        chosen = palette[color]
    else:
        bgr = tuple(int(c) for c in color)
        if len(bgr) != 3:
            raise ValueError("a custom colour is a BGR triple")
        chosen = MaskColor("custom", bgr)  # type: ignore[arg-type]
    return key, chosen


def transform_landmarks(points468: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """FaceMesh landmarks mapped by a 2x3 similarity (e.g. into an aligned crop): x, y by the
    matrix and depth scaled by the same factor, as :func:`render_mask` needs them (depth in
    the image's pixel scale; an unscaled depth distorts the mask on a scaled crop)."""
    pts = np.asarray(points468, np.float64)
    m = np.asarray(matrix, np.float64)
    xy = pts[:, :2] @ m[:, :2].T + m[:, 2]
    if pts.shape[1] < 3:
        return xy.astype(np.float32)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    return np.concatenate([xy, pts[:, 2:3] * scale], 1).astype(np.float32)


def render_mask(image_bgr: np.ndarray, points468: np.ndarray, rng: np.random.Generator,
                style: str | None = None, color: str | Color | MaskColor | None = None) -> np.ndarray:
    """Draw one of the product's synthetic masks onto a face and return the new image.

    ``image_bgr``: ``HxWx3`` uint8 BGR (a full photo or an aligned crop; the image is not
    modified). ``points468``: FaceMesh landmarks of that face in the same image's pixels,
    ``468x3`` (x, y, depth as :class:`.landmarks.Landmarks` gives them; on a crop use
    :func:`transform_landmarks`, which scales the depth with x and y) or ``468x2`` (then a
    generic face depth is assumed: fine for frontal faces, flatter on turned ones).
    ``style``: a key of :data:`MASK_STYLES` (random if ``None``); ``color``: a colourway
    name of that style, a BGR triple or a :class:`MaskColor` (random if ``None``). The
    result depends only on the inputs and the state of ``rng``.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError("expected an HxWx3 uint8 BGR image")
    style_key, mask_color = _resolve_style(style, color, rng)
    points = np.asarray(points468, np.float64)
    frame = _face_frame(points)
    light = _estimate_light(image_bgr, points, frame, rng)
    grid = _mask_grid(frame, style_key, rng)
    cam = frame.to_image(grid.local)                      # rows x cols x (x, y, depth)
    d = frame.iod
    h_img, w_img = image_bgr.shape[:2]

    # texture size: about one texel per canvas pixel
    span_u = float(np.linalg.norm(np.diff(cam[..., :2], axis=1), axis=-1).sum(1).max())
    span_v = float(np.linalg.norm(np.diff(cam[..., :2], axis=0), axis=-1).sum(0).max())
    local_span_u = float(np.linalg.norm(np.diff(grid.local, axis=1), axis=-1).sum(1).max())
    ss = 3 if d < 40 else 2 if d < 260 else 1
    tex_w = int(np.clip(max(span_u, local_span_u) * ss, 48, 1400))
    tex_h = int(np.clip(span_v * ss * 1.2, 36, 1000))

    # per-texel maps from the grid
    s_t = _resize(grid.s, tex_w, tex_h)
    v_t = _resize(grid.v, tex_w, tex_h)
    # coordinates along the mask's surface (eye distances) so patterns wrap round the face
    j0 = int(np.argmin(np.abs(grid.s[grid.s.shape[0] // 2])))
    along_u = np.concatenate([np.zeros((grid.s.shape[0], 1)),
                              np.cumsum(np.linalg.norm(np.diff(grid.local, axis=1), axis=-1), 1)], 1)
    along_v = np.concatenate([np.zeros((1, grid.s.shape[1])),
                              np.cumsum(np.linalg.norm(np.diff(grid.local, axis=0), axis=-1), 0)], 0)
    x_t = _resize((along_u - along_u[:, j0:j0 + 1]) / d, tex_w, tex_h)
    y_t = _resize((along_v + grid.local[:1, :, 1] - grid.local[0, j0, 1]) / d, tex_w, tex_h)
    ctx = _TexCtx(s_t, v_t, x_t, y_t, px=tex_w / max(local_span_u / d, 1e-6), ss=float(ss))
    surf = _STYLE_TEXTURE[style_key](ctx, mask_color, rng)

    # normals (camera frame, towards the camera) with the style's bumps
    P = cam.astype(np.float32)
    tu = np.gradient(P, axis=1)
    tv = np.gradient(P, axis=0)
    n = np.cross(tv, tu)
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-9
    if n[..., 2].mean() > 0:
        n = -n
    n_t = _resize(n, tex_w, tex_h)
    tu_t = _resize(tu * (_GRID_COLS - 1) / (tex_w - 1), tex_w, tex_h)   # per texel
    tv_t = _resize(tv * (_GRID_ROWS - 1) / (tex_h - 1), tex_w, tex_h)
    hgt = surf.height.astype(np.float32) * d                              # pixels
    hv, hu = np.gradient(hgt)
    nb = n_t - (hu / (np.sum(tu_t ** 2, -1) + 1e-6))[..., None] * tu_t \
        - (hv / (np.sum(tv_t ** 2, -1) + 1e-6))[..., None] * tv_t
    nb /= np.linalg.norm(nb, axis=-1, keepdims=True) + 1e-9
    ldir = light.direction.astype(np.float32)
    diffuse = np.clip(np.einsum("hwc,c->hw", nb, ldir), 0, 1)
    facing = np.clip(-n_t[..., 2], 0, 1)  # surfaces turning away from the camera get less light
    ambient, kd = 0.3, 0.8
    frontal = ambient + kd * max(-float(ldir[2]), 0.2)
    shade = (ambient * (0.45 + 0.55 * facing) + kd * diffuse) / frontal
    half = ldir + np.array([0, 0, -1], np.float32)
    half /= np.linalg.norm(half)
    spec = surf.gloss * np.clip(np.einsum("hwc,c->hw", nb, half), 0, 1) ** 24
    # fabric meeting the skin: a little darker towards the outline
    edge_shadow = cv2.GaussianBlur(surf.alpha.astype(np.float32), (0, 0), max(0.05 * d * ss, 1.0))
    ao = surf.ao * (0.82 + 0.18 * np.clip(edge_shadow * 1.6 - 0.3, 0, 1))
    lin = (surf.albedo ** 2.2) * (shade * ao)[..., None]
    exposure = (light.white / 255.0) ** 2.2
    lin = lin * exposure * (light.tint ** 2.2) + (spec * exposure)[..., None]
    rgb = np.clip(lin, 0, 1) ** (1 / 2.2) * 255.0
    texture = np.concatenate([rgb, surf.alpha[..., None] * 255.0], -1).astype(np.float32)

    # where in the image: canvas over the mask and its loops, at ss x resolution
    loops = [frame.to_image(c) for c in _loop_curves(grid, frame, surf.alpha, surf)]
    all_xy = np.concatenate([cam[..., :2].reshape(-1, 2)] + [c[:, :2] for c in loops])
    pad = int(np.ceil(0.1 * d)) + 2
    x0 = max(int(np.floor(all_xy[:, 0].min())) - pad, 0)
    y0 = max(int(np.floor(all_xy[:, 1].min())) - pad, 0)
    x1 = min(int(np.ceil(all_xy[:, 0].max())) + pad, w_img)
    y1 = min(int(np.ceil(all_xy[:, 1].max())) + pad, h_img)
    out = image_bgr.copy()
    if x1 - x0 < 2 or y1 - y0 < 2:
        return out
    cw, ch = (x1 - x0) * ss, (y1 - y0) * ss

    def to_canvas(xy: np.ndarray) -> np.ndarray:
        return (xy - np.array([x0, y0])) * ss + (ss - 1) / 2

    map_x, map_y = _rasterize(to_canvas(cam[..., :2]), cam[..., 2], tex_w, tex_h, (ch, cw))
    layer = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    keep_out = _eye_keep_out(points, to_canvas, (ch, cw), 0.06 * d * ss)

    # loops behind the mask
    loop_layer = np.zeros((ch, cw, 4), np.uint8)
    thick = max(int(round((0.04 if surf.loops == "head" else 0.024) * d * ss)), 1)
    loop_col = np.clip(np.asarray(mask_color.loops, np.float32) / 255.0, 0, 1) ** 2.2 * exposure * 0.85
    loop_bgr = tuple(float(c) for c in np.clip(loop_col ** (1 / 2.2) * 255 * light.tint, 0, 255))
    for c in loops:  # a hint: the loops fade out before reaching the ears (hair, ears, shadow)
        pts = np.round(to_canvas(c[:, :2]) * 16).astype(np.int32)
        n_seg = len(pts) - 1
        for i in range(int(n_seg * 0.6)):
            fade = 255.0 * (1 - i / (n_seg * 0.6)) ** 1.5
            cv2.line(loop_layer, tuple(int(t) for t in pts[i]), tuple(int(t) for t in pts[i + 1]),
                     loop_bgr + (fade,), thick, cv2.LINE_AA, 4)
    loop_f = loop_layer.astype(np.float32)
    la = loop_f[..., 3:] / 255.0
    ma = layer[..., 3:] / 255.0
    ma = ma * keep_out[..., None]
    la = la * keep_out[..., None]
    premult = layer[..., :3] * ma + loop_f[..., :3] * la * (1 - ma)
    alpha = ma + la * (1 - ma)

    # down to image resolution (anti-aliasing), a touch of blur and sensor noise
    w_out, h_out = x1 - x0, y1 - y0
    premult = cv2.resize(premult, (w_out, h_out), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (w_out, h_out), interpolation=cv2.INTER_AREA)
    blur = 0.45 if d > 50 else 0.3
    premult = cv2.GaussianBlur(premult, (0, 0), blur)
    alpha = cv2.GaussianBlur(alpha, (0, 0), blur)[..., None] if alpha.ndim == 2 else alpha
    alpha = alpha if alpha.ndim == 3 else alpha[..., None]
    color_px = premult / np.maximum(alpha, 1e-4)
    color_px += rng.normal(0, 1.6, color_px.shape).astype(np.float32)

    # a soft contact shadow on the skin just outside the mask, away from the light
    roi = out[y0:y1, x0:x1].astype(np.float32)
    mask_only = cv2.resize(ma, (w_out, h_out), interpolation=cv2.INTER_AREA)
    mask_only = mask_only if mask_only.ndim == 2 else mask_only[..., 0]
    ldir_img = light.direction[:2]
    shift = np.float32([[1, 0, -ldir_img[0] * 0.04 * d], [0, 1, -ldir_img[1] * 0.06 * d + 0.02 * d]])
    shadow = cv2.warpAffine(mask_only, shift, (w_out, h_out))
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(0.04 * d, 0.8))
    shadow *= cv2.resize(keep_out, (w_out, h_out), interpolation=cv2.INTER_AREA)
    roi *= (1 - 0.28 * shadow * (1 - mask_only))[..., None]
    roi = roi * (1 - alpha) + color_px * alpha
    out[y0:y1, x0:x1] = np.clip(np.round(roi), 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------- dlib 68 and templates


def to_dlib68(points468: np.ndarray) -> np.ndarray:
    """FaceMesh landmarks in dlib's 68-point layout: a ``68x2`` float32 array of ``(x, y)``.

    Order as in dlib/iBUG: jaw 0-16 (the subject's right ear, i.e. image left on a frontal
    face, round the chin to the left ear), right brow 17-21, left brow 22-26, nose bridge
    27-30 and nostrils 31-35, right eye 36-41, left eye 42-47, outer lips 48-59 and inner
    lips 60-67. The jaw is FaceMesh's face contour resampled evenly (dlib's jaw points are
    evenly spaced; FaceMesh's are not), from the ear at eye height (FaceMesh 127) to the
    chin (152) and up to the other ear (356). Close to, not identical with, what dlib's own
    predictor puts there; good enough to warp mask templates.
    """
    pts = np.asarray(points468, np.float64)
    if pts.ndim != 2 or pts.shape[0] != 468 or pts.shape[1] < 2:
        raise ValueError(f"expected 468 FaceMesh points, got shape {pts.shape}")
    xy = pts[:, :2]
    jaw = np.concatenate([_resample(xy[list(JAW_CONTOUR_RIGHT)], 9), _resample(xy[list(JAW_CONTOUR_LEFT)], 9)[1:]])
    return np.concatenate([jaw, xy[list(DLIB68_FROM_MESH)]]).astype(np.float32)


def _resample(poly: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced along an open polyline, ends included."""
    seg = np.linalg.norm(np.diff(poly, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0, cum[-1], n)
    return np.stack([np.interp(t, cum, poly[:, 0]), np.interp(t, cum, poly[:, 1])], 1)


@dataclass(frozen=True, eq=False)
class Template:
    """A MaskTheFace mask template.

    ``image``: ``HxWx4`` uint8 BGRA. ``anchors``: ``6x2`` float32 template pixels of the
    anchors ``a`` to ``f`` (a, c: left and right ends at the nose-tip line; b: the nose
    bridge; d, f: left and right at the lower-lip line; e: under the chin). ``base``: the
    mask type without its view suffix; ``view``: ``"front"``, ``"left"`` or ``"right"``.
    """

    name: str
    base: str
    view: str
    image: np.ndarray
    anchors: np.ndarray


def _find_cfg(directory: Path) -> Path:
    for cand in (directory / "masks.cfg", directory / "masks" / "masks.cfg"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"no masks.cfg in {directory} or {directory / 'masks'}")


def load_templates(directory: str | Path) -> list[Template]:
    """Read MaskTheFace's ``masks.cfg`` (in ``directory`` or ``directory/masks``) and its
    RGBA templates. Sections without a template (``empty``, ``inpaint``) are skipped.

    Template paths in the cfg are relative to MaskTheFace's root (``masks/templates/x.png``);
    they are looked up from the cfg's parent folder, the cfg's folder, and ``templates/``.
    Raises :class:`FileNotFoundError` for a missing cfg or template file and
    :class:`ValueError` for a malformed section.
    """
    cfg_path = _find_cfg(Path(directory))
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(cfg_path)
    templates = []
    for name in parser.sections():
        sec = parser[name]
        if "template" not in sec:
            continue
        rel = Path(sec["template"].strip())
        candidates = [cfg_path.parent.parent / rel, cfg_path.parent / rel, cfg_path.parent / "templates" / rel.name]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"template {rel} of [{name}] not found next to {cfg_path}")
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None or image.ndim != 3 or image.shape[2] != 4:
            raise ValueError(f"template {path} is not an RGBA image")
        try:
            anchors = np.array([[float(t) for t in sec[f"mask_{k}"].split(",")] for k in "abcdef"], np.float32)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"[{name}] in {cfg_path} needs mask_a .. mask_f as 'x, y'") from exc
        view = "left" if name.endswith("_left") else "right" if name.endswith("_right") else "front"
        base = name[: -len(view) - 1] if view != "front" else name
        templates.append(Template(name, base, view, image, anchors))
    return templates


def _line_polyline_hits(p: np.ndarray, direction: np.ndarray, poly: np.ndarray) -> list[np.ndarray]:
    """Points where the infinite line ``p + t * direction`` crosses the polyline, in polyline order."""
    hits = []
    for a, b in zip(poly[:-1], poly[1:], strict=True):
        seg = b - a
        den = direction[0] * seg[1] - direction[1] * seg[0]
        if abs(den) < 1e-9:
            continue
        w = p - a
        u = (direction[0] * w[1] - direction[1] * w[0]) / den
        if -1e-6 <= u <= 1 + 1e-6:
            hits.append(a + u * seg)
    return hits


def _extended_jaw(jaw: np.ndarray) -> np.ndarray:
    """The jaw line with both ends extended upwards, so that lines near the eyes still cross it."""
    up0 = jaw[0] - jaw[2]
    up1 = jaw[16] - jaw[14]
    return np.concatenate([[jaw[0] + up0], jaw, [jaw[16] + up1]])


def six_points(points468: np.ndarray) -> tuple[np.ndarray, float]:
    """MaskTheFace's six face anchors from the landmarks, and the face angle in degrees.

    Returns ``(6x2 float32 [a, b, c, f, e, d], angle)``: b is the middle of the nose
    bridge (dlib 27-30); a and c are where a line parallel to the eyes at the nose tip's
    height crosses the jaw; d and f the same at the lower lip's lowest point; e is where
    the face's vertical axis meets the chin. ``angle`` compares the nose with the face
    axis (MaskTheFace picks its ``_left``/``_right`` templates beyond +/-13 degrees).
    """
    lm = to_dlib68(points468).astype(np.float64)
    jaw = _extended_jaw(lm[:17])
    right_eye, left_eye = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_dir = left_eye - right_eye
    eye_dir /= max(np.linalg.norm(eye_dir), 1e-9)
    normal = np.array([-eye_dir[1], eye_dir[0]])  # points down the face
    eye_mid = (right_eye + left_eye) / 2
    bridge_top, nose_tip = lm[27], lm[30]
    b = (bridge_top + nose_tip) / 2
    bottom_lip = lm[[54, 55, 56, 57, 58, 59, 48, 64, 65, 66, 67, 60]]

    def across(depth: float) -> tuple[np.ndarray, np.ndarray]:
        hits = _line_polyline_hits(eye_mid + normal * depth, eye_dir, jaw)
        if len(hits) < 2:
            return lm[2], lm[14]
        return hits[0], hits[-1]

    nose_len = float((nose_tip - bridge_top) @ normal)
    a, c = across(nose_len + float((bridge_top - eye_mid) @ normal))
    lip_depth = float(((bottom_lip - eye_mid) @ normal).max())
    d_pt, f = across(lip_depth)
    axis_dir = bottom_lip.mean(0) - bridge_top
    e_hits = _line_polyline_hits(bridge_top, axis_dir, jaw) + _line_polyline_hits(eye_mid, normal, jaw)
    e_hits = [h for h in e_hits if (h - eye_mid) @ normal > 0]
    e = np.mean(e_hits, 0) if e_hits else lm[8]
    six = np.array([a, b, c, f, e, d_pt], np.float32)

    def deg(v: np.ndarray) -> float:
        ang = np.degrees(np.arctan2(v[1], v[0])) % 180.0
        return float(ang)

    # the difference of two directions folded into [0, 180): wrapped, or a face rolled about 90 degrees,
    # whose two nearly equal directions fall either side of 0/180, would differ by about 180
    angle = (deg(nose_tip - bridge_top) - deg(axis_dir) + 90.0) % 180.0 - 90.0
    return six, angle


def template_view(angle: float, threshold: float = 13.0) -> str:
    """MaskTheFace's choice of template view for a face angle from :func:`six_points`."""
    return "right" if angle < -threshold else "left" if angle > threshold else "front"


def warp_template(image_bgr: np.ndarray, points468: np.ndarray, template: Template) -> np.ndarray:
    """Warp a MaskTheFace template onto the face and alpha-blend it; returns the new image.

    A homography maps the template's six anchors onto :func:`six_points` (as MaskTheFace
    does); the template's brightness is scaled towards the face's (MaskTheFace's
    brightness matching), then it is blended by its own alpha channel.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError("expected an HxWx3 uint8 BGR image")
    six, _ = six_points(points468)
    src = template.anchors[[0, 1, 2, 5, 4, 3]]  # a, b, c, f, e, d
    matrix, _ = cv2.findHomography(src, six, 0)
    if matrix is None:
        raise ValueError("could not fit the template to these landmarks")
    h, w = image_bgr.shape[:2]
    warped = cv2.warpPerspective(template.image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = warped[..., 3:].astype(np.float32) / 255.0
    color = warped[..., :3].astype(np.float32)
    tpl_alpha = template.image[..., 3] > 0
    if tpl_alpha.any():
        tpl_v = float(template.image[..., :3][tpl_alpha].max(1).mean())
        pts = np.asarray(points468)[:, :2]
        x0, y0 = np.clip(pts.min(0).astype(int), 0, [w - 1, h - 1])
        x1, y1 = np.clip(pts.max(0).astype(int) + 1, 1, [w, h])
        face_v = float(image_bgr[y0:y1, x0:x1].max(2).mean()) if x1 > x0 and y1 > y0 else tpl_v
        gain = 1 + (face_v - tpl_v) / 255.0
        hsv = cv2.cvtColor(np.clip(color, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 2] = np.clip(hsv[..., 2] * gain, 0, 255)
        color = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    out = image_bgr.astype(np.float32) * (1 - alpha) + color * alpha
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def choose_template(templates: Sequence[Template], points468: np.ndarray,
                    rng: np.random.Generator) -> Template:
    """A random mask type, in the view that suits the face's angle when the set has it."""
    if not templates:
        raise ValueError("no templates to choose from")
    bases = sorted({t.base for t in templates})
    base = str(_pick(rng, bases))
    view = template_view(six_points(points468)[1])
    same = [t for t in templates if t.base == base]
    exact = [t for t in same if t.view == view] or [t for t in same if t.view == "front"] or same
    return exact[0]


def apply_mask(image_bgr: np.ndarray, points468: np.ndarray, rng: np.random.Generator,
               templates: Sequence[Template] | None = None) -> np.ndarray:
    """Mask a face: the product renderer (random style and colour) when ``templates`` is
    ``None``, otherwise a random MaskTheFace template (benchmarks). Deterministic for a
    given ``rng`` state."""
    if templates is None:
        return render_mask(image_bgr, points468, rng)
    return warp_template(image_bgr, points468, choose_template(templates, points468, rng))


# --------------------------------------------------------------------------- directories

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class MaskReport:
    """Outcome of :func:`mask_directory`: relative paths (POSIX) of each kind."""

    written: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Images seen."""
        return len(self.written) + len(self.no_face) + len(self.failed)


def image_rng(seed: int, relative_path: str) -> np.random.Generator:
    """The generator for one image: a function of the seed and the image's relative path
    only, so the order and parallelism of a run do not change any output."""
    digest = hashlib.sha256(relative_path.replace("\\", "/").encode()).digest()
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int.from_bytes(digest[:8], "little")])


def iter_images(root: Path, exclude: Path | None = None) -> list[Path]:
    """Image files under ``root`` (recursively, sorted), skipping anything under ``exclude``."""
    root = Path(root)
    found = []
    for path in sorted(root.rglob("*")):
        if exclude is not None and (path == exclude or exclude in path.parents):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(path)
    return found


def _encode_params(suffix: str) -> list[int]:
    if suffix in (".jpg", ".jpeg"):
        return [cv2.IMWRITE_JPEG_QUALITY, 95]
    if suffix == ".webp":
        return [cv2.IMWRITE_WEBP_QUALITY, 95]
    return []


FaceFinder = Callable[[np.ndarray], "np.ndarray | None"]


def _check_complete(path: Path) -> None:
    """Raise ``ValueError`` for a damaged or truncated file: OpenCV decodes what it can of a cut JPEG
    (the rest grey, "Premature end of JPEG file" on stderr), which then read as "without a face".
    A JPEG that lacks only its end marker is refused too (Pillow cannot tell it from a cut one;
    appending the marker made a cut file pass): a rare file, listed as failed rather than a cut
    one passed as faceless."""
    try:
        with Image.open(path) as img:
            img.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ValueError(f"damaged or truncated image ({exc})") from None


def mask_directory(in_dir: str | Path, out_dir: str | Path, find_face: FaceFinder, *, seed: int = 0,
                   templates: Sequence[Template] | None = None, log: Callable[[str], None] | None = None,
                   progress_every: int = 100, report: MaskReport | None = None) -> MaskReport:
    """Write a masked copy of every image under ``in_dir`` to the same relative path under
    ``out_dir`` (same format). ``find_face(image_bgr)`` returns the landmarks of the face to
    mask (``468x3``) or ``None``; images without a face are listed in the report and not
    written. Each image's randomness comes from :func:`image_rng` (seed + relative path).
    ``log`` gets a progress line every ``progress_every`` images and at the end. ``report``: the
    report to fill (the caller's, which then also tells what was done before a Ctrl-C); each file
    is written whole or not at all (:func:`.files.write_atomic`).
    """
    src, dst = Path(in_dir).resolve(), Path(out_dir).resolve()
    if not src.is_dir():
        raise FileNotFoundError(f"input directory does not exist: {in_dir}")
    if src == dst:
        raise ValueError("--out must differ from --in (the originals would be overwritten)")
    files = iter_images(src, exclude=dst if src in dst.parents else None)
    report = report if report is not None else MaskReport()
    start = time.monotonic()
    for n, path in enumerate(files, 1):
        rel = path.relative_to(src).as_posix()
        try:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError("unreadable image")
            _check_complete(path)
            points = find_face(image)
            if points is None:
                report.no_face.append(rel)
            else:
                masked = apply_mask(image, points, image_rng(seed, rel), templates)
                target = dst / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                ok, buf = cv2.imencode(path.suffix.lower(), masked, _encode_params(path.suffix.lower()))
                if not ok:
                    raise ValueError("could not encode the result")
                # whole or not at all (a run stopped half-way left a copy cut short), readable as a
                # plain write's would be
                write_atomic(target, lambda fh, data=buf.tobytes(): fh.write(data), binary=True, shared=True)
                report.written.append(rel)
        except (ValueError, OSError, cv2.error) as exc:
            report.failed.append(rel)
            if log:
                log(f"failed: {rel}: {exc}")
        if log and (n % progress_every == 0 or n == len(files)):
            rate = n / max(time.monotonic() - start, 1e-6)
            log(f"[{n}/{len(files)}] masked {len(report.written)}, no face {len(report.no_face)}, "
                f"failed {len(report.failed)} ({rate:.1f} images/s)")
    return report

