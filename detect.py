#!/usr/bin/env python3
"""cropnet's command line: `train`, `evaluate` and `predict`.

A thin layer: each command parses its options, builds configs, calls one
library function and prints a summary. torch is imported inside the commands
that need it, so `--help` and input errors answer at once.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from cropnet import __version__
from cropnet.config import STAGES, ModelConfig, SynthConfig, TrainConfig
from cropnet.errors import CropnetError
from cropnet.images import DEFAULT_MAX_PIXELS
from cropnet.predict import METHODS

EXIT_PAIRED, EXIT_NOT_PAIRED, EXIT_ERROR = 0, 1, 2  # like cmp and grep


class CommandError(click.ClickException):
    """A failure the user can act on: one line on stderr, exit code 2 (1 means "not a crop")."""

    exit_code = EXIT_ERROR


def resolve_device(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA was asked for but torch sees no GPU", param_hint="--device")
    return torch.device(name)


device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                             show_default=True, help="Where the network runs; auto picks CUDA when present.")


def show_traceback_if_debugging(error: Exception) -> None:
    """With --debug, the traceback behind an error goes to stderr before its one-line message."""
    context = click.get_current_context(silent=True)
    if context is not None and (context.find_root().obj or {}).get("debug"):
        traceback.print_exception(error, file=sys.stderr)


def fail(error: Exception, prefix: str = "") -> CommandError:
    """The one-line error for `error` (its traceback first, with --debug)."""
    show_traceback_if_debugging(error)
    return CommandError(f"{prefix}{error}")


max_pixels_option = click.option("--max-pixels", type=click.IntRange(min=1), default=None,
                                 help="Refuse (or, in a folder, skip) images with more pixels than this "
                                      "[default: 100,000,000].")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cropnet")
@click.option("--debug", is_flag=True, help="Print the traceback behind an error message.")
@click.pass_context
def cli(context, debug):
    """Tell whether one image is a cropped version of the other, which one, and where."""
    context.obj = {"debug": debug}


@cli.command()
@click.option("--images", "images_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder of photos (searched recursively) to synthesize training pairs from.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/latest"),
              show_default=True, help="Where best.pt, last.pt and log.jsonl are written.")
@click.option("--epochs", type=click.IntRange(min=1), default=TrainConfig.epochs, show_default=True,
              help="Epochs to train.")
@click.option("--pairs-per-epoch", type=click.IntRange(min=1), default=TrainConfig.pairs_per_epoch, show_default=True,
              help="Pairs synthesized for each epoch (new pairs every epoch).")
@click.option("--val-pairs", type=click.IntRange(min=1), default=TrainConfig.val_pairs, show_default=True,
              help="Validation pairs, from photos held out of training.")
@click.option("--batch-size", type=click.IntRange(min=1), default=TrainConfig.batch_size, show_default=True,
              help="Pairs per step.")
@click.option("--lr", type=float, default=TrainConfig.lr, show_default=True, help="Peak learning rate (AdamW).")
@click.option("--freeze-epochs", type=click.IntRange(min=0), default=TrainConfig.freeze_epochs, show_default=True,
              help="Train only the heads, trunk frozen, for this many first epochs (the write-up's schedule).")
@click.option("--easy-epochs", type=click.IntRange(min=0), default=TrainConfig.easy_epochs, show_default=True,
              help="Curriculum: negatives only from other photos for this many first epochs, then the full mix.")
@click.option("--ramp-epochs", type=click.IntRange(min=0), default=TrainConfig.ramp_epochs, show_default=True,
              help="Curriculum: after the easy epochs, the hard negatives' share grows over this many epochs.")
@click.option("--arch", default=ModelConfig.arch, show_default=True,
              help="resnet18 (or resnet34): the pair stacked as 6 channels; siamese-resnet18: "
                   "one trunk per image, the crop's features correlated over the original's.")
@click.option("--input-size", type=click.IntRange(min=32), default=ModelConfig.input_size, show_default=True,
              help="Side N of the network's N x N input.")
@click.option("--fit", type=click.Choice(["common", "stretch"]), default=ModelConfig.fit, show_default=True,
              help="common: one scale for both images; stretch: each squeezed to N x N (the write-up's).")
@click.option("--photo-max-side", type=click.IntRange(min=16), default=SynthConfig.photo_max_side, show_default=True,
              help="Photos are shrunk to this longest side before synthesis (speed on CPU).")
@click.option("--workers", type=click.IntRange(min=0), default=TrainConfig.workers, show_default=True,
              help="DataLoader processes synthesizing pairs.")
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True, help="Seed for pair synthesis.")
@click.option("--pretrained", type=click.Path(dir_okay=False, path_type=Path),
              help="Local torchvision ResNet state dict for the trunk (nothing is downloaded).")
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path),
              help="Continue from a last.pt (its stored configs are used; --epochs may extend).")
@click.option("--init", type=click.Path(dir_okay=False, path_type=Path),
              help="Fine-tune: start from this checkpoint's weights and model config (e.g. checkpoints/cropnet.pt), "
                   "with a fresh optimizer, schedule and curriculum.")
@click.option("--amp", is_flag=True, help="Mixed precision (float16 on a GPU, bfloat16 on a CPU).")
@click.option("--stage", type=click.Choice(STAGES), default=TrainConfig.stage,
              show_default=True,
              help="match: train the network; refine: train only a siamese network's refining stage "
                   "(added to an --init checkpoint that has none), the rest kept as it is; crop-fit: train only "
                   "that stage's whole-crop head (see --refine-crop-side); crop-mined: that head again, from the "
                   "corners `predict --method net` looks at when an --init checkpoint answers pairs of these photos "
                   "(use --photo-max-side as large as the photos you answer).")
@click.option("--refine-zoom", type=click.FloatRange(min=0), default=ModelConfig.refine_zoom, show_default=True,
              help="Siamese: scale of the refining stage's closer view over the first view's (0: no such stage; "
                   "--stage refine adds one at 4 when 0).")
@click.option("--refine-jitter", type=click.FloatRange(min=0), default=TrainConfig.refine_jitter, show_default=True,
              help="--stage refine: the first stage's corner error it is trained to correct, as a share of the "
                   "original's side (std per axis).")
@click.option("--refine-pixels", is_flag=True,
              help="The refining stage also fits its corner patches pixel by pixel and reads the residual "
                   "(added to an --init checkpoint's refining stage that has none).")
@click.option("--refine-crop-side", type=click.IntRange(min=0), default=ModelConfig.refine_crop_side,
              show_default=True,
              help="The refining stage's last look: the whole crop compared with the original under the corner it "
                   "found, pixel by pixel, its longer side seen at this many px (0: no such look; --stage crop-fit "
                   "adds it to an --init checkpoint).")
@click.option("--refine-crop-adds", is_flag=True,
              help="--stage crop-mined: answering adds the whole-crop head's say whole (raising 'crop' too) and "
                   "searches the whole crop around a corner the looks turned down; without it, a veto.")
@max_pixels_option
@device_option
def train(images_dir, out_dir, epochs, pairs_per_epoch, val_pairs, batch_size, lr, freeze_epochs, easy_epochs,
          ramp_epochs, arch, input_size, fit, photo_max_side, workers, seed, pretrained, resume, init, amp,
          stage, refine_zoom, refine_jitter, refine_pixels, refine_crop_side, refine_crop_adds, max_pixels, device):
    """Train a model on pairs synthesized from a folder of photos.

    Under `torchrun --nproc_per_node=N detect.py train ...` the N processes share
    every epoch's pairs (DistributedDataParallel; gloo on CPU, nccl on GPU) and
    rank 0 alone writes the log and checkpoints. --batch-size is per process.
    """
    from cropnet.train import train as run_training

    try:
        model_config = ModelConfig(arch=arch, input_size=input_size, fit=fit, refine_zoom=refine_zoom,
                                   refine_pixels=refine_pixels, refine_crop_side=refine_crop_side,
                                   refine_crop_adds=refine_crop_adds)
        synth_config = SynthConfig(photo_max_side=photo_max_side)
        train_config = TrainConfig(epochs=epochs, pairs_per_epoch=pairs_per_epoch, val_pairs=val_pairs,
                                   batch_size=batch_size, lr=lr, freeze_epochs=freeze_epochs, easy_epochs=easy_epochs,
                                   ramp_epochs=ramp_epochs, seed=seed, workers=workers, amp=amp, stage=stage,
                                   refine_jitter=refine_jitter)
        best = run_training(images_dir, out_dir, model_config=model_config, synth_config=synth_config,
                            train_config=train_config, device=resolve_device(device), resume=resume,
                            pretrained=pretrained, init=init, max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
                            echo=click.echo)
    except (CropnetError, ValueError) as error:
        raise fail(error) from error
    if best:  # empty in torchrun's other processes, and when a resumed run had no epoch left
        click.echo(f"best validation paired accuracy {best['paired_accuracy']:.3f}; checkpoints in {out_dir}")


@cli.command()
@click.option("--images", "images_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder of photos never used for training or calibration; pairs are synthesized from all of them.")
@click.option("--method", type=click.Choice((*METHODS, "all")), default="hybrid", show_default=True,
              help="Method to measure; 'all' runs the three on the same pairs, side by side.")
@click.option("--pairs", type=click.IntRange(min=1), default=1000, show_default=True,
              help="How many pairs to synthesize.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed for pair synthesis.")
@click.option("--photo-max-side", type=click.IntRange(min=16), default=None,
              help="Shrink photos to this longest side first (default: full resolution, as users' files are).")
@click.option("--megapixels", type=click.FloatRange(min=0.01), default=None,
              help="Resize every photo (up or down) to about this many megapixels first.")
@click.option("--crop-range", type=(click.FloatRange(0, 1, min_open=True), click.FloatRange(0, 1, max_open=True)),
              default=(SynthConfig.crop_min, SynthConfig.crop_max), show_default=True,
              help="Crop side as a fraction of the original's side, drawn in this range (e.g. 0.012 0.03 for "
                   "48-120 px crops of 12-megapixel photos).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Model for net and hybrid [default: the shipped checkpoints/cropnet.pt].")
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as one JSON object.")
@max_pixels_option
@device_option
def evaluate(images_dir, method, pairs, seed, photo_max_side, megapixels, crop_range, checkpoint, as_json, max_pixels,
             device):
    """Measure methods on pairs synthesized from a folder of photos.

    Every kind of pair the synthesizer makes (true crops; crops of another photo,
    flipped, past the border, resized), JPEG qualities 25-95 and some lossless;
    scored per kind, per quality band, and for small and border-touching crops.
    """
    import json
    from dataclasses import replace

    from cropnet.data import describe_skipped, load_folder
    from cropnet.evaluate import compare_methods, format_comparison, scale_to_megapixels, summarize_answers
    from cropnet.predict import Predictor

    methods = METHODS if method == "all" else (method,)
    synth_config = replace(SynthConfig(), photo_max_side=photo_max_side, crop_min=crop_range[0],
                           crop_max=crop_range[1])
    try:
        torch_device = None if methods == ("classic",) else resolve_device(device)
        predictors = {name: Predictor(name, checkpoint, torch_device) for name in methods}
        photos = load_folder(images_dir, photo_max_side, max_pixels or DEFAULT_MAX_PIXELS)
    except (CropnetError, ValueError) as error:
        raise fail(error) from error
    click.echo(f"photos: {len(photos.photos)}" + (f", {len(photos.skipped)} skipped" if photos.skipped else ""),
               err=True)
    for line in describe_skipped(photos.skipped):
        click.echo(f"  {line}", err=True)
    images = photos.photos
    if megapixels:
        images = [scale_to_megapixels(photo, megapixels) for photo in images]
    records = compare_methods(predictors, images, pairs=pairs, seed=seed, synth_config=synth_config)
    summaries = {name: summarize_answers(records, name) for name in methods}
    if as_json:
        click.echo(json.dumps({"pairs": pairs, "photos": len(images), "skipped": len(photos.skipped),
                               "methods": summaries}))
    else:
        click.echo(format_comparison(summaries))


@cli.command()
@click.argument("image_a", required=False, type=click.Path(path_type=Path))
@click.argument("image_b", required=False, type=click.Path(path_type=Path))
@click.option("--pairs", "pairs_file", type=click.File("r"), default=None,
              help="CSV with header 'a,b', one pair per row ('-' reads standard input); answers one line per row.")
@click.option("--method", type=click.Choice(METHODS), default="hybrid", show_default=True,
              help="classic: pixels only, no network (fastest start); net: the network alone (rough corner); "
                   "hybrid: the network proposes, full-resolution verification decides.")
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON (one object per pair).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Model for net and hybrid [default: the shipped checkpoints/cropnet.pt].")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="net only: paired when the network's paired probability is at least this.")
@max_pixels_option
@click.option("--visualize", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a picture of the answer (PNG): the original with the crop's rectangle, the crop "
                   "beside it, the verdict below. Two images only, not with --pairs.")
@device_option
def predict(image_a, image_b, pairs_file, method, as_json, checkpoint, threshold, max_pixels, visualize, device):
    """Is IMAGE_B a crop of IMAGE_A, or IMAGE_A a crop of IMAGE_B?

    Exit code 0: one is a crop of the other; 1: neither is; 2: an error
    (with --pairs: 0 unless a row failed, then 2).
    """
    import json

    from cropnet.images import image_size, load_image
    from cropnet.predict import Predictor, read_pairs

    if pairs_file is None and (image_a is None or image_b is None):
        raise click.UsageError("give two images, or --pairs FILE")
    if pairs_file is not None and image_a is not None:
        raise click.UsageError("give either two images or --pairs FILE, not both")
    if pairs_file is not None and visualize is not None:
        raise click.UsageError("--visualize draws one pair: give two images, not --pairs")
    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    rows = None
    if pairs_file is not None:
        try:
            rows = read_pairs(pairs_file)  # a wrong header fails here, before the model loads
        except CropnetError as error:
            raise fail(error, f"{pairs_file.name}: ") from error
    else:
        try:  # a bad file fails here, from its header, before torch and the model are loaded
            image_size(image_a, max_pixels), image_size(image_b, max_pixels)
        except CropnetError as error:
            raise fail(error) from error
    try:
        torch_device = None if method == "classic" else resolve_device(device)
        predictor = Predictor(method, checkpoint, torch_device, threshold)
    except CropnetError as error:
        raise fail(error) from error

    def show(answer: dict, text: str) -> None:
        click.echo(json.dumps(answer) if as_json else text)

    if rows is None:
        try:
            prediction = predictor.predict_files(image_a, image_b, max_pixels)
        except CropnetError as error:
            raise fail(error) from error
        show(prediction.to_json(), prediction.to_text())
        if visualize is not None:
            from cropnet.visualize import draw_answer

            try:
                images = load_image(image_a, max_pixels), load_image(image_b, max_pixels)
                draw_answer(*images, prediction).save(visualize, format="PNG")
            except OSError as error:
                raise fail(error, f"{visualize}: cannot write the picture: ") from error
        sys.exit(EXIT_PAIRED if prediction.paired else EXIT_NOT_PAIRED)

    from tqdm import tqdm

    failed = 0
    # Answered as a stream: each pair's files are read while the one before is answered.
    answers = predictor.predict_many([(row["a"], row["b"]) for row in rows if "error" not in row], max_pixels)
    # The bar goes to stderr, and only when a person watches it: stdout stays one answer per line.
    for row in tqdm(rows, desc="predict", unit="pair", file=sys.stderr, disable=not sys.stderr.isatty()):
        if "error" not in row:
            answer = next(answers)
            if not isinstance(answer, Exception):
                show(answer.to_json(), answer.to_text())
                continue
            if isinstance(answer, CropnetError):
                row["error"] = str(answer)
            else:  # a bug on one row must not lose the batch's other answers
                show_traceback_if_debugging(answer)
                row["error"] = f"{row['a']}, {row['b']}: internal error ({type(answer).__name__}: {answer})"
        failed += 1
        show(row, f"error: {row['error']}")
    sys.exit(EXIT_ERROR if failed else EXIT_PAIRED)


if __name__ == "__main__":
    sys.exit(cli())
