"""``manage.py evaluate_pairs``: face verification on LFW-format pairs with the product's pipeline."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from masknet_site.command_line import ProgressBar
from recognition.engine.benchmark import evaluate_pairs, masked_entries
from recognition.engine.evaluation import parse_pairs

from ._common import check_json_target, engine_from_settings, fmt, write_json


class Command(BaseCommand):
    help = ("Verification accuracy (LFW 10-fold protocol), ROC AUC and TAR at FAR 1e-2/1e-3 on a pairs "
            "file in LFW pairs.txt format; images at DIR/Name/Name_000N.<ext>.")

    def add_arguments(self, parser):
        parser.add_argument("--images", required=True, help="DIR/Name/Name_000N.<ext>")
        parser.add_argument("--pairs", required=True, help="pairs file in LFW pairs.txt format")
        parser.add_argument("--masked-list", default=None,
                            help="image paths relative to --images that show masked faces, one per line")
        parser.add_argument("--json", default=None, help="write the results as JSON here")
        parser.add_argument("--no-mirror", action="store_true",
                            help="embed each face without its mirror image (the ablation's plain row; "
                                 "the site always embeds with it)")

    def handle(self, *args, images, pairs, masked_list, json, no_mirror=False, **options):
        if not Path(images).is_dir():
            raise CommandError(f"--images {images} is not a directory")
        for f in (pairs, masked_list):
            if f and not Path(f).is_file():
                raise CommandError(f"{f} does not exist")
        try:   # before the models load: a bad file is said at once
            parsed = parse_pairs(Path(images), Path(pairs))
            if not parsed:
                raise CommandError(f"{pairs} holds no pairs")
            if len({pair.same for pair in parsed}) < 2:   # no threshold, AUC or TAR at a FAR without both
                raise CommandError(f"{pairs} holds only {'same' if parsed[0].same else 'different'}-person "
                                   "pairs: the figures need both kinds")
            masked = masked_entries(Path(masked_list), Path(images)) if masked_list else set()
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"{exc}") from exc
        named = {str(p.relative_to(images)) for pair in parsed for p in (pair.a, pair.b)}
        if masked_list and not masked & named:
            # the masked subsets would come out empty, as if no face were masked
            raise CommandError(f"{masked_list} names none of the images of {pairs} (one path a line, relative "
                               f"to --images, e.g. {min(named)})")
        check_json_target(json)
        # a missing image would be scored as a face not found: figures printed as if measured
        missing = sorted({str(p) for pair in parsed for p in (pair.a, pair.b) if not p.exists()})
        if missing:
            raise CommandError(f"{len(missing)} images of {pairs} are not under {images}, e.g. {missing[0]}")
        engine = engine_from_settings(flip_tta=False) if no_mirror else engine_from_settings()
        result = evaluate_pairs(engine, Path(images), Path(pairs),
                                Path(masked_list) if masked_list else None, ProgressBar("images"))
        result["mirror"] = engine.config.flip_tta
        rows = [("all", result)] + [(k, v) for k, v in result.get("subsets", {}).items()]
        self.stdout.write(f"{'set':<20} {'n':>6} {'accuracy':>9} {'± std':>7} {'AUC':>7} {'TAR@1e-2':>9}")
        for name, r in rows:
            self.stdout.write(f"{name:<20} {r.get('n', r.get('n_pairs')):>6} {fmt(r.get('accuracy')):>9} "
                              f"{fmt(r.get('accuracy_std')):>7} {fmt(r.get('auc')):>7} "
                              f"{fmt(r.get('tar_at_far_1e-2')):>9}")
        self.stdout.write(f"TAR@FAR1e-3 {fmt(result['tar_at_far_1e-3'])}; failed images "
                          f"{result['failed_images']}/{result['n_images']}")
        write_json(result, json)   # after the table: a file that cannot be written loses no figure
