"""``manage.py evaluate_identification``: open-set identification as the kiosk performs it."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from masknet_site.command_line import ProgressBar
from recognition.engine.benchmark import evaluate_identification, person_images

from ._common import check_json_target, engine_from_settings, fmt, write_json


class Command(BaseCommand):
    help = ("Enrol DIR/<person>/<images> as the product enrols people, identify each probe as the kiosk "
            "would; probes of people absent from the gallery must be rejected.")

    def add_arguments(self, parser):
        parser.add_argument("--gallery", required=True)
        parser.add_argument("--probes", required=True)
        parser.add_argument("--json", default=None)
        parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic-mask templates")

    def handle(self, *args, gallery, probes, json, seed, **options):
        if seed < 0:
            raise CommandError(f"--seed must be at least 0 (got {seed})")
        check_json_target(json)
        for d in (gallery, probes):
            if not Path(d).is_dir():
                raise CommandError(f"{d} is not a directory")
            if not person_images(Path(d)):
                raise CommandError(f"{d} holds no images as <person>/<image>")
        result = evaluate_identification(engine_from_settings(), Path(gallery), Path(probes),
                                         ProgressBar("photos"), seed=seed,
                                         min_face_px=settings.MASKNET_KIOSK_MIN_FACE_PX)
        for key in ("rank1", "fnir_at_fpir_1e-2", "fpir_at_threshold", "fnir_at_threshold",
                    "n_gallery_people", "failed_gallery_images", "n_known_probes", "n_unknown_probes", "failed_probes",
                    "probes_refused_by_quality"):
            self.stdout.write(f"{key:<22} {fmt(result[key])}")
        write_json(result, json)   # after the figures: a file that cannot be written loses none
        if not result["n_gallery_people"]:   # the figures above measure nothing: a script must notice
            raise CommandError(f"no gallery photo under {gallery} could be enrolled (unreadable, no usable face)")
