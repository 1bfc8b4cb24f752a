"""``manage.py train_mask_classifier``: fit the masked/unmasked head on real and synthetic masks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from masknet_site.command_line import people_file_rows
from recognition.engine import EngineConfig, NoFaceFound, UnreadableImage, load_engine
from recognition.engine.errors import FrameTooLarge
from recognition.engine.files import savez_atomic
from recognition.engine.maskclf import DEFAULT_PATH
from recognition.engine.train import fit_logistic_head

from ._common import check_json_target, shared_data

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def list_images(root: Path) -> list[Path]:
    """Image files under ``root``, sorted."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)


class Command(BaseCommand):
    help = ("Train the masked/unmasked head (TensorFlow) on embeddings of real masked photos, "
            "unmasked photos and unmasked photos with the product's own synthetic masks.")

    def add_arguments(self, parser):
        shared = shared_data()
        parser.add_argument("--masked", default=str(shared / "rwmfd_part1"), help="photos of masked faces")
        parser.add_argument("--unmasked", default=str(shared / "lfw" / "images_deepfunneled"))
        parser.add_argument("--unmasked-people", default=str(shared / "lfw" / "peopleDevTrain.txt"),
                            help="restrict unmasked photos to these people (LFW people file)")
        parser.add_argument("--n-unmasked", type=int, default=1200)
        parser.add_argument("--synthetic", type=int, default=800,
                            help="unmasked photos also used with a synthetic mask (product renderer)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--out", default=str(DEFAULT_PATH),
                            help="where the head is written (default: the shipped file the engine loads, "
                                 "%(default)s; its metrics beside it)")

    def handle(self, *args, **o):
        # before the embedding and training, not after them (they took the whole run with them)
        check_json_target(o["out"], option="--out")
        masked_dir, unmasked_dir = Path(o["masked"]), Path(o["unmasked"])
        for d in (masked_dir, unmasked_dir):
            if not d.is_dir():
                raise CommandError(f"{d} is not a directory")
        for key in ("n_unmasked", "synthetic", "seed"):   # a negative count would slice from the end
            if o[key] < 0:
                raise CommandError(f"--{key.replace('_', '-')} must be 0 or more")
        rng = random.Random(o["seed"])
        people = None
        if o["unmasked_people"]:
            # a mistyped path must not silently train on every LFW person, the test people included
            if not Path(o["unmasked_people"]).is_file():
                raise CommandError(f"{o['unmasked_people']} not found (--unmasked-people '' uses every person)")
            people = {row[0] for row in people_file_rows(Path(o["unmasked_people"]))}
        unmasked = [p for p in list_images(unmasked_dir) if people is None or p.parent.name in people]
        rng.shuffle(unmasked)
        unmasked = unmasked[: o["n_unmasked"]]
        synthetic = set(unmasked[: o["synthetic"]])
        masked = list_images(masked_dir)
        # the classifier reads FaceRes's whole-face embedding alone (Engine._embed_and_classify)
        engine = load_engine(settings.MASKNET_MODELS_DIR, EngineConfig().with_(resnet_weight=0.0), mask_classifier=None)
        nprng = np.random.default_rng(o["seed"])
        xs, ys = [], []
        jobs = [(p, 1) for p in masked] + [(p, 0) for p in unmasked]
        for n, (path, label) in enumerate(jobs, 1):
            if n % 200 == 0:
                self.stderr.write(f"  {n}/{len(jobs)} photos embedded")
            try:
                faces = engine.analyze(path.read_bytes(), max_faces=1)
            except (NoFaceFound, UnreadableImage, FrameTooLarge, OSError):   # OSError: a file that cannot be read
                continue
            face = faces[0]
            xs.append(face.embedding)
            ys.append(label)
            if path in synthetic and face.landmarks is not None:
                from recognition.engine.masks import render_mask

                img = engine.decode(path.read_bytes())
                with_mask = render_mask(img, face.landmarks, nprng)
                try:
                    xs.append(engine.analyze(with_mask, max_faces=1)[0].embedding)
                    ys.append(1)
                except NoFaceFound:
                    pass
        if len(set(ys)) < 2:
            raise CommandError("need faces of both kinds, masked and unmasked: found "
                               f"{ys.count(1)} masked and {ys.count(0)} unmasked")
        x, y = np.stack(xs), np.asarray(ys, np.float32)
        fit = fit_logistic_head(x, y, seed=o["seed"])
        metrics = {**fit.metrics, "n_masked": int(y.sum()), "n_unmasked": int((1 - y).sum()),
                   "seed": o["seed"], "sources": {"masked": str(masked_dir), "unmasked": str(unmasked_dir)}}
        out = Path(o["out"])
        savez_atomic(out, shared=True, weights=fit.weights, bias=np.float32(fit.bias),
                     metrics=np.array(json.dumps(metrics)))
        self.stdout.write(json.dumps(metrics, indent=2))
        self.stdout.write(f"wrote {out}")
