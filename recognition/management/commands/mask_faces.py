"""``manage.py mask_faces``: write a masked copy of every face photo in a folder.

The product's own renderer draws the masks; ``--templates`` warps MaskTheFace templates
instead (benchmarks only: masks the product has never seen). The work is done by
:func:`recognition.engine.masks.mask_directory`; this command parses, loads the two
models it needs and reports.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

NO_FACE_SHOWN = 20


class Command(BaseCommand):
    help = ("Write a masked copy of each image under --in (jpg, jpeg, png, bmp, webp; recursively) to the "
            "same relative path under --out, masking the largest face. Deterministic for a --seed.")

    def add_arguments(self, parser):
        parser.add_argument("--in", dest="in_dir", required=True, help="folder of face photos (walked recursively)")
        parser.add_argument("--out", dest="out_dir", required=True, help="where the masked copies go")
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        parser.add_argument("--templates", default=None,
                            help="MaskTheFace folder (masks.cfg and templates/) to warp instead of the "
                                 "product's renderer; for benchmarks")
        parser.add_argument("--models-dir", default=None, help="default: settings.MASKNET_MODELS_DIR")
        parser.add_argument("--progress-every", type=int, default=100, help="a progress line every N images")

    def handle(self, *args, in_dir: str, out_dir: str, seed: int = 0, templates: str | None = None,
               models_dir: str | None = None, progress_every: int = 100, **options):
        from recognition.engine import masks

        src = Path(in_dir)
        if not src.is_dir():
            raise CommandError(f"input directory does not exist: {src}")
        if Path(out_dir).resolve() == src.resolve():
            raise CommandError("--out must differ from --in (the originals would be overwritten)")
        try:   # before any face is looked for: a file there failed every image after a whole run
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"cannot write to --out {out_dir}: {exc.strerror or exc}") from exc
        chosen = self._templates(templates) if templates else None
        find_face = self._face_finder(Path(models_dir or settings.MASKNET_MODELS_DIR))

        def log(line: str) -> None:
            self.stderr.write(line)

        report = masks.MaskReport()
        try:
            masks.mask_directory(src, out_dir, find_face, seed=seed, templates=chosen, log=log,
                                 progress_every=max(progress_every, 1), report=report)
        except KeyboardInterrupt:
            raise CommandError(f"interrupted: {len(report.written)} masked copies written (each whole), "
                               f"{report.total} images looked at; run it again to write them all") from None
        source = f"{len(chosen)} MaskTheFace templates" if chosen else "the product renderer"
        self.stdout.write(f"masked {len(report.written)} of {report.total} images into {out_dir} with {source} "
                          f"(seed {seed})")
        if report.no_face:
            shown = report.no_face if options.get("verbosity", 1) >= 2 else report.no_face[:NO_FACE_SHOWN]
            self.stdout.write(f"{len(report.no_face)} images without a face (skipped):")
            for rel in shown:
                self.stdout.write(f"  {rel}")
            if len(shown) < len(report.no_face):
                self.stdout.write(f"  ... and {len(report.no_face) - len(shown)} more (-v 2 lists them all)")
        if report.total == 0:
            raise CommandError(f"no images found under {src}")
        if report.failed:   # a script or CI job must notice: the set it asked for is incomplete
            raise CommandError(f"{len(report.failed)} images could not be read or written (see above)")

    def _templates(self, directory: str) -> list:
        import configparser

        from recognition.engine.masks import load_templates

        try:
            found = load_templates(directory)
        except (OSError, ValueError, configparser.Error) as exc:   # a masks.cfg with no [section]
            raise CommandError(f"cannot read the mask templates: {exc}") from exc
        if not found:
            raise CommandError(f"no templates in {directory}")
        return found

    def _face_finder(self, models_dir: Path):
        """``image -> 468x3 landmarks of the largest face, or None``."""
        from recognition.engine import EngineConfig
        from recognition.engine.detect import BlazeFaceDetector
        from recognition.engine.install import installed_manifest
        from recognition.engine.landmarks import FaceMesh
        from recognition.engine.runtime import load_model

        if installed_manifest(models_dir) is None:
            raise CommandError(f"the face models are not installed in {models_dir} "
                               "(run `python manage.py install_models`)")
        cfg = EngineConfig()
        detector = BlazeFaceDetector(load_model(models_dir, "blazeface"))
        mesh = FaceMesh(load_model(models_dir, "facemesh"))

        def find_face(image):
            dets = detector(image, min_confidence=cfg.detect_min_confidence, iou=cfg.detect_iou,
                            max_faces=cfg.detect_max_faces)
            if not dets:
                return None
            largest = max(dets, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
            landmarks = mesh(image, [largest])[0]
            return landmarks.points if landmarks.score >= cfg.mesh_min_confidence else None

        return find_face
