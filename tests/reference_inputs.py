"""Deterministic inputs for the TF.js-vs-converter equivalence test (the one place they live).

``scripts/record_references.py`` feeds these arrays, byte for byte, to the original
TF.js runtime to record ``tests/data/references/*.npy``, and ``tests/test_convert.py``
feeds the same arrays to the converted SavedModels. The Node side never recomputes
them, so changing anything here means re-running ``scripts/record_references.py``
(the test notices: it checks the inputs' statistics against the recorded ones).

The picture, defined on normalised coordinates ``u = x / (W - 1)``, ``v = y / (H - 1)``
so that it looks the same at every model resolution, is in ``[0, 1]`` RGB:

* background: ``0.5 + 0.5 * sin(2*pi*(1.3*u*(c+1) + 0.9*v) + 0.3*c)`` (smooth colour
  waves, a different frequency per channel ``c``), faded to 35 % contrast around mid-grey;
* a skin-coloured face: an ellipse centred at ``(0.5, 0.47)`` with radii ``(0.27, 0.36)``
  and a soft edge, ``weight = exp(-r**4)`` where ``r`` is the elliptic radius;
* two dark eyes (Gaussians at ``(0.39, 0.40)`` and ``(0.61, 0.40)``, sigma 0.035),
  a reddish mouth (elongated Gaussian at ``(0.5, 0.64)``) and a slight nose shade.

It is then scaled linearly into the range the model expects (:data:`INPUT_RANGES`):
BlazeFace ``[-1, 1]``, FaceMesh/antispoof/liveness ``[0, 1]``, FaceRes and face-api's ResNet
(``dlibres``, 150x150) ``[0, 255]``.
Every input has batch size 1 (BlazeFace's graph only accepts batch 1).
"""

from __future__ import annotations

import numpy as np

from recognition.engine.registry import MODEL_SPECS, RESNET_INPUT_SHAPE, RESNET_MODEL

# (low, high) value range of each model's input: the [0, 1] picture maps linearly onto it.
INPUT_RANGES: dict[str, tuple[float, float]] = {
    "blazeface": (-1.0, 1.0),
    "facemesh": (0.0, 1.0),
    "faceres": (0.0, 255.0),
    "antispoof": (0.0, 1.0),
    "liveness": (0.0, 1.0),
    RESNET_MODEL: (0.0, 255.0),
}

_SKIN = np.array([0.87, 0.68, 0.56])
_EYE = np.array([0.12, 0.09, 0.08])
_MOUTH = np.array([0.62, 0.22, 0.24])


def _gauss(u: np.ndarray, v: np.ndarray, cu: float, cv: float, su: float, sv: float) -> np.ndarray:
    """Return an axis-aligned Gaussian bump of height 1, shape ``(H, W, 1)``."""
    return np.exp(-0.5 * (((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2))[..., None]


def face_picture(height: int, width: int) -> np.ndarray:
    """Draw the synthetic face of the module docstring: ``(H, W, 3)`` float64 in [0, 1]."""
    v, u = np.meshgrid(np.linspace(0.0, 1.0, height), np.linspace(0.0, 1.0, width),
                       indexing="ij")
    c = np.arange(3, dtype=np.float64)
    phase = 2 * np.pi * (1.3 * u[..., None] * (c + 1) + 0.9 * v[..., None]) + 0.3 * c
    waves = 0.5 + 0.5 * np.sin(phase)
    img = 0.5 + 0.35 * (waves - 0.5)

    r = np.sqrt(((u - 0.5) / 0.27) ** 2 + ((v - 0.47) / 0.36) ** 2)
    face = np.exp(-(r**4))[..., None]
    shading = 1.0 - 0.15 * np.clip(r, 0.0, 1.0)[..., None] ** 2  # a little roundness
    img = img * (1 - face) + (_SKIN * shading) * face

    for cu in (0.39, 0.61):
        eye = _gauss(u, v, cu, 0.40, 0.035, 0.035)
        img = img * (1 - eye) + _EYE * eye
    nose = _gauss(u, v, 0.5, 0.52, 0.025, 0.06)
    img = img * (1 - 0.25 * nose)
    mouth = _gauss(u, v, 0.5, 0.64, 0.08, 0.022)
    img = img * (1 - mouth) + _MOUTH * mouth
    return np.clip(img, 0.0, 1.0)


def reference_input(model_name: str) -> np.ndarray:
    """Return the deterministic NHWC float32 input (batch 1) for ``model_name``."""
    shape = RESNET_INPUT_SHAPE if model_name == RESNET_MODEL else MODEL_SPECS[model_name].input_shape
    _, height, width, channels = shape
    if channels != 3:
        raise ValueError(f"{model_name}: expected an RGB input, got {shape}")
    low, high = INPUT_RANGES[model_name]
    img = low + (high - low) * face_picture(int(height), int(width))
    return img[None].astype(np.float32)


def input_stats(x: np.ndarray) -> dict[str, float]:
    """Summarise ``x`` (recorded with the references to detect a changed input formula)."""
    x64 = np.asarray(x, dtype=np.float64)
    return {"mean": float(x64.mean()), "std": float(x64.std()),
            "min": float(x64.min()), "max": float(x64.max())}
