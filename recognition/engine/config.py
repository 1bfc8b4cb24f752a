"""Every tuned number of the recognizer, in one frozen object passed in by callers."""

from __future__ import annotations

from dataclasses import dataclass, replace

# EngineConfig()'s descriptor first (the benchmarks' default, which docs/accuracy.md's sections measured);
# the site's default is settings.MASKNET_DESCRIPTOR ("sface")
DESCRIPTORS = ("faceres+resnet", "sface", "arcface")


@dataclass(frozen=True)
class EngineConfig:
    """Recognizer settings. Sizes are pixels of the original image unless stated.

    Thresholds are cosine similarities between L2-normalised embeddings; masked
    probes get their own threshold (a threshold tuned on unmasked faces fails
    masked ones).
    """

    # input limits
    max_image_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 40_000_000
    # detector (BlazeFace back)
    detect_min_confidence: float = 0.55
    # when no face reaches detect_min_confidence, faces down to this one are taken: a mask lowers
    # BlazeFace's confidence (at 0.55 it missed 8.1% of 1,193 real masked photos and 4.2% of LFW
    # DevTest photos wearing unseen masks; at 0.45, 3.1% and 0.9%), while a confident face still
    # wins, so unmasked photos are unaffected. Chosen with bench/detection.py against false faces in
    # images without one (past the quality gate: 0.5% at 0.55, 1.5% at 0.45, 3.5% at 0.35; such a
    # face then meets the strict match thresholds); the same value as detect_min_confidence turns it
    # off. Not in the template version: it changes which photos have a face, not their vectors.
    detect_fallback_confidence: float = 0.45
    detect_iou: float = 0.3
    detect_max_faces: int = 10
    # landmarks (FaceMesh): below this face flag, alignment falls back to the detector's eye points.
    # A mask lowers the flag (under 0.3 for 8% of LFW DevTest faces with unseen masks, most of them
    # under 0.1) while the mesh's eyes stay the better alignment: their masked vectors met the same
    # photo's unmasked one at cosine 0.841 mesh-aligned against 0.836 detector-aligned (flag under
    # 0.1; 0.864 against 0.862 from 0.1 to 0.3). So every mesh is used, as every figure in docs/ was
    # measured (the flag was read through a second sigmoid then, which kept it above 0.5).
    mesh_min_confidence: float = 0.0
    # quality gate
    min_face_px: int = 60           # the detector box's width, clipped at the image's edge
    # mean grey level of the skin above a mask (brows to nose bridge), 0-255. Chosen with
    # bench/light.py (LFW DevTest probes dimmed as a camera in dim light sees them): frames down to
    # 30 match their people as often as well-lit ones and let no more strangers in (45 before:
    # it refused 44% of the frames of a scene at a tenth of the light, 94% at a twentieth)
    min_brightness: float = 30.0
    max_brightness: float = 230.0
    # the eye band's focus (quality.Quality.focus): the Laplacian's variance after a 1.5 px
    # Gaussian, scaled up for a face darker than 128 so that dim light does not lower it. 2.4
    # refuses no more sharp well-lit LFW faces than the Laplacian's raw variance did at 12 (bare
    # 3.5% against 4.3%, masked 0.4% against 0.5%: each one refused is a single-frame miss) and
    # 84-98% of the clearly blurred ones (Gaussian 2.5-3.5 px, in full and dim light; raw 95-100%),
    # where the raw figure also called 4-99% of sharp faces in dim light blurred (bench/light.py;
    # docs/accuracy.md, "Dim light and blur"). Enrolment photos keep the raw figure's limit
    # (gallery.ENROL_MIN_SHARPNESS)
    min_focus: float = 2.4
    max_yaw: float = 0.45           # nose offset from the eye midpoint / eye distance
    max_pitch: float = 0.6
    # a face cut off by the image's edge: the share of it outside the picture (quality.outside_fraction)
    # above which it is refused ("partial": the kiosk asks the person to move to the middle). Chosen
    # with bench/partial_faces.py on LFW DevTest probes cut on each side: it refuses most of the cut
    # faces that lose their match (a cut through the brows costs far more than one through a cheek
    # or the chin) and few of those that keep it; no uncut LFW photo comes near it.
    max_outside: float = 0.2
    # a face cut through its middle by the picture's edge (a kiosk sends only the part of the camera's
    # picture its screen shows, so a face half out of that part is cut) is mostly not found at all: the
    # kiosk said "Looking for a face" to someone standing half in the picture. Where a frame has no face,
    # Engine.analyze(search_edges=True) looks again in the frame extended on each side by its own
    # reflection (edge_reflection of its width and height), where such a face shows whole, and refuses
    # one found across the edge as "partial" (never embedded, never decided on). Only where FaceMesh is
    # at least edge_min_face_flag sure that it read a face: a reflection makes faces of symmetric
    # things too (bench/cut_faces.py; docs/accuracy.md "Faces cut off by the picture's edge").
    edge_reflection: float = 0.5
    edge_min_face_flag: float = 0.3
    # a face that fills the picture (a tightly cropped photo: an ID card's portrait cut to the face, a
    # data set of face crops) is larger than any face BlazeFace looks for in a whole image: it is
    # often not found (131 masked faces of LFW DevTest's pairs cut to 140 of LFW's 250 px, 382 cut to
    # the brows and chin, 110 px), or a part of it (a masked face's eyes and brows) is taken for a small
    # face, which passed the gate and was matched as the person. Engine.analyze
    # (search_filled=True) looks again in the picture within a plain border fill_border of its
    # shorter side wide on each side, and keeps a face found there at least fill_min_share of that
    # side wide whose centre is in the picture, in place of the narrower faces found inside it
    # (recognition.engine.PART_OF_FILLING_WIDTH); it is aligned
    # and gated in the picture itself, as any face (a face cut by its edges is "partial"). A kiosk's
    # frames are not searched so: its camera sees people whole, and every frame would pay the pass.
    # Measured with bench/filled.py (docs/accuracy.md, "Faces that fill the picture"); 0 turns it off.
    # Not in the template version: no uncut photo's face changes (a photo enrolled by a part of its
    # face before keeps those templates until its photo is added again).
    fill_border: float = 0.3
    fill_min_share: float = 0.5
    # alignment / embedding
    aligned_size: int = 224
    eye_distance: float = 0.26      # fraction of the aligned crop between the eye centres
    eye_y: float = 0.42             # fraction of the crop height at which the eyes sit
    flip_tta: bool = True
    # masked classifier
    masked_threshold: float = 0.5
    # masked faces are matched by their whole-face embedding fused with the embedding of the upper
    # face (the crop with every row below ``upper_face_cut`` of its height filled with the mean
    # colour): ``normalise((1 - w) * whole + w * upper)``. Chosen on LFW DevTrain people wearing the
    # product's own masks (bench/fusion.py: the lowest FNIR at the re-calibrated threshold); 0 turns
    # it off (then calibrate threshold_masked again).
    upper_face_weight: float = 0.6
    upper_face_cut: float = 0.56
    # every face is also described by dlib's ResNet (128-d; face-api's port) and matched by
    # ``(1 - w) * cos_FaceRes + w * cos_ResNet`` (embed.join): the two networks err on different
    # faces. Chosen on LFW DevTrain pairs (bench/ensemble.py: the highest mean of the unmasked and
    # masked TAR at thresholds calibrated at FAR 1e-4; 0.75: 74.1% -> 86.5% and 44.9% -> 48.8%);
    # 0 turns it off (then calibrate the thresholds again: 0.676 / 0.745).
    resnet_weight: float = 0.75
    # a masked face's ResNet descriptor is fused with the ResNet's descriptor of its upper face (same
    # cut as above, no mirror): ``normalise((1 - u) * whole + u * upper)``, as FaceRes's. Chosen on
    # LFW DevTrain people wearing the product's masks at resnet_weight 0.75 by the same rule
    # (bench/ensemble.py: masked TAR at FAR 1e-4 48.8% -> 51.7%; flat from 0.5 to 1.0); 0 turns it off
    # (then calibrate threshold_masked again).
    resnet_upper_weight: float = 0.6
    # matching: calibrated on LFW DevTrain (3,443 photos, 11.8M cross-person pairs; people the
    # benchmarks never measure on: bench/ablation.py --calibrate-split DevTrain) at a false-accept
    # rate of 1e-4 per comparison, so that a gallery of a few hundred people keeps single-frame
    # false identifications rare (bench/identification.py); the masked one on probes wearing the
    # product's own masks searched against photographed + synthetic-mask templates, masked faces
    # matched by the upper-face fusions above, both networks joined as above (the joined cosine of
    # impostors sits higher, hence the values). Masked faces look more alike, so their threshold is
    # higher, not lower. The same fit on DevTest gives 0.862 / 0.901. See docs/accuracy.md.
    threshold_unmasked: float = 0.866
    threshold_masked: float = 0.902
    # which network describes faces for matching: "faceres+resnet" (these defaults, above), "sface" (the
    # OpenCV Zoo's SFace, Apache-2.0; the site's default, settings.MASKNET_DESCRIPTOR) or the opt-in
    # "arcface" (InsightFace's w600k_mbf; non-commercial licence, docs/MODELS.md). The chip descriptors'
    # thresholds come from ``for_descriptor``; FaceRes's embedding still feeds the masked/unmasked head.
    descriptor: str = "faceres+resnet"
    # how a chip descriptor's (SFace's, ArcFace's) chip is cut: "five_point" puts FaceMesh's eye centres,
    # nose tip and mouth corners on InsightFace's template by least squares, as those networks were
    # trained (under a mask the last three are FaceMesh's estimate); "eyes" puts only the eyes where the
    # template has them (the engine until 2026-12-02). LFW DevTrain, SFace, at the thresholds calibrated
    # at FAR 1e-4 (bench/descriptors.py --sface --split DevTrain [--chips eyes]): TAR unmasked and masked
    # (product masks) in for_descriptor's docstring (docs/accuracy.md "Five-point chips for SFace"). A face without
    # landmarks gets the eye-only chip. Changing it changes every vector: calibrate the thresholds again.
    chip_alignment: str = "five_point"
    # a masked face's chip descriptor is the converted network's ``embedding_masked`` where it has one:
    # SFace's last feature map passed through a gain learned on LFW DevTrain people wearing the
    # product's masks (``mean + gain * (map - mean)``, train.fit_feature_gain; shipped in
    # recognition/engine/assets/sface_gain-v1.npz; docs/accuracy.md "A learned gain on SFace's last
    # feature map"). False matches masked faces by the plain descriptor (then calibrate
    # threshold_masked again: 0.466 for SFace without the gain, 0.397 with it).
    masked_gain: bool = True

    def __post_init__(self) -> None:
        if self.chip_alignment not in ("five_point", "eyes"):
            raise ValueError(f"chip_alignment is {self.chip_alignment!r}: 'five_point' or 'eyes'")

    @classmethod
    def for_descriptor(cls, descriptor: str) -> EngineConfig:
        """The defaults for a descriptor: ``"sface"`` and ``"arcface"`` get their own thresholds,
        calibrated as FaceRes+ResNet's (bench/descriptors.py [--sface] --calibrate-split DevTrain: FAR 1e-4
        over LFW DevTrain's cross-person pairs, masked probes with the product's masks against
        photographed + synthetic-mask templates). ArcFace, with the upper-face fusion: TAR 97.9%
        unmasked, 85.6% masked (on DevTest the same fit gives 0.285 / 0.426); ArcFace keeps the eye-only
        chip they were calibrated on. SFace matches a masked face by its whole face alone, on its
        five-point chip (``chip_alignment``): on DevTrain the upper-face fusion lowered its masked TAR at
        FAR 1e-4 (93.4% with it, 93.9% without) and cost two SFace passes a masked face (docs/accuracy.md
        "SFace"); TAR 98.2% unmasked. A masked face's descriptor is SFace's last feature map through
        the shipped gain (``masked_gain``; bench/featuremap.py --gain-file ... --calibrate, 2026-12-03):
        masked threshold 0.397, TAR 95.7% with the product's masks, unseen MaskTheFace masks 92.1% at FAR
        8.3e-5, and on DevTest at this threshold FAR 8.6e-5 with TAR 94.5% / 90.5% (without the gain:
        0.466, TAR 93.9%, unseen 88.1% at 4.4e-5; DevTest 93.2% / 86.9%; the eye-only chip before it:
        0.433 / 0.483, TAR 96.2% / 90.4%, unseen masks 87.2% at 7.3e-5)."""
        if descriptor not in DESCRIPTORS:
            raise ValueError(f"unknown descriptor {descriptor!r} (one of {', '.join(DESCRIPTORS)})")
        if descriptor == "arcface":
            # its thresholds were calibrated on eye-only chips; the five-point chip was measured with SFace only
            return cls(descriptor="arcface", threshold_unmasked=0.284, threshold_masked=0.427, chip_alignment="eyes")
        if descriptor == "sface":
            return cls(descriptor="sface", threshold_unmasked=0.425, threshold_masked=0.397, upper_face_weight=0.0)
        return cls()

    def with_(self, **changes) -> EngineConfig:
        """Return a copy with some fields changed."""
        return replace(self, **changes)
