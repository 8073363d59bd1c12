"""Training: synthesized pairs in, best and last checkpoints and a per-epoch log out."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import configs_from_checkpoint, load_checkpoint, model_from_checkpoint, save_checkpoint
from .config import PAIR_KINDS, ModelConfig, SynthConfig, TrainConfig
from .data import (
    CROP_FIT_RADIUS,
    PairDataset,
    PairTransform,
    PhotoSet,
    RefineTransform,
    describe_skipped,
    load_folder,
    split_names,
)
from .errors import TrainingError
from .evaluate import predict_loader, predict_refine_loader, summarize, summarize_refine
from .images import DEFAULT_MAX_PIXELS
from .model import STRIDE, CropNet, CropNetOutput, RefineOutput, build_model


def compute_loss(output, batch: dict, top_left_weight: float) -> tuple[torch.Tensor, dict]:
    """Paired cross-entropy on every pair; swapped and top-left only where a crop exists."""
    paired = batch["paired"]
    positive = paired.bool()
    loss_paired = F.cross_entropy(output.paired_logits, paired)
    if positive.any():
        loss_swapped = F.cross_entropy(output.swapped_logits[positive], batch["swapped"][positive])
        loss_top_left = F.l1_loss(output.top_left[positive], batch["top_left"][positive])
    else:  # a batch without crops: keep the graph, contribute nothing
        loss_swapped = loss_top_left = output.top_left.sum() * 0.0
    loss = loss_paired + loss_swapped + top_left_weight * loss_top_left
    parts = {"paired": loss_paired.item(), "swapped": loss_swapped.item(), "top_left": loss_top_left.item()}
    return loss, parts


def compute_refine_loss(output: RefineOutput, batch: dict) -> tuple[torch.Tensor, dict]:
    """The refining stage's: paired cross-entropy on every pair; each corner's place (smooth L1,
    in feature cells, so a cell off costs about as much as a doubtful decision) on true crops."""
    loss_paired = F.cross_entropy(output.paired_logits, batch["paired"])
    positive = batch["paired"].bool()
    if positive.any():
        loss_offsets = F.smooth_l1_loss(output.offsets[positive] / STRIDE, batch["offsets"][positive] / STRIDE)
    else:
        loss_offsets = output.offsets.sum() * 0.0
    return loss_paired + loss_offsets, {"paired": loss_paired.item(), "offsets": loss_offsets.item()}


def forward_and_loss(model, batch: dict, stage: str, top_left_weight: float) -> tuple[torch.Tensor, dict]:
    """`model` is the whole network for stage "match", its refiner for the others (either maybe DDP-wrapped)."""
    if stage in ("refine", "crop-fit"):
        output = model(batch["windows"], batch["patches"], batch.get("regions"), batch.get("crops"))
        return compute_refine_loss(RefineOutput(*(t.float() for t in output)), batch)
    output = model(batch["image"])
    return compute_loss(CropNetOutput(*(t.float() for t in output)), batch, top_left_weight)


def train_one_epoch(model, loader, optimizer, scheduler, device, top_left_weight: float, header: str,
                    scaler=None, show_progress: bool = True, stage: str = "match") -> dict:
    """One pass over `loader`. With a `scaler` (torch.amp.GradScaler), forward passes run in mixed precision."""
    model.train()
    if stage == "crop-fit":  # only the whole-crop head learns: the rest keeps its batch-norm statistics
        refiner = getattr(model, "module", model)  # under DDP, the wrapped refiner
        refiner.eval()
        refiner.crop_paired.train()
    totals = {}
    steps = 0
    amp = scaler is not None
    progress = tqdm(loader, desc=header, leave=False, dynamic_ncols=True, disable=not show_progress)
    for batch in progress:
        batch = {k: v.to(device) for k, v in batch.items()}
        # float16 on a GPU, bfloat16 on a CPU; the loss itself is computed in float32.
        with torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16,
                            enabled=amp):
            loss, parts = forward_and_loss(model, batch, stage, top_left_weight)
        optimizer.zero_grad(set_to_none=True)
        if amp:
            scaler.scale(loss).backward()  # a no-op scale when the scaler is disabled (CPU, bfloat16)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        steps += 1
        for key, value in {"loss": loss.item(), **parts}.items():
            totals[key] = totals.get(key, 0.0) + value
        progress.set_postfix(loss=f"{totals['loss'] / steps:.3f}")
    return {key: value / max(1, steps) for key, value in totals.items()}


def make_scheduler(optimizer, train_config: TrainConfig, steps_per_epoch: int):
    """Linear warm-up, then cosine decay to zero over all epochs."""
    total = max(1, train_config.epochs * steps_per_epoch)
    warmup = min(train_config.warmup_steps, total // 2)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def prepare_photos(images_dir: Path, synth_config: SynthConfig,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[PhotoSet, PhotoSet]:
    """Find, decode and split a training folder into train and validation photos."""
    photos = load_folder(images_dir, synth_config.photo_max_side, max_pixels)
    train_names, val_names = split_names(photos.names, synth_config.val_percent)
    if not val_names or not train_names:
        # Tiny folders: the hash split can leave one side empty; hold out the last photo.
        train_names, val_names = photos.names[:-1] or photos.names, photos.names[-1:]
    by_name = dict(zip(photos.names, photos.photos, strict=True))
    train = PhotoSet(train_names, [by_name[n] for n in train_names], photos.skipped)
    val = PhotoSet(val_names, [by_name[n] for n in val_names], [])
    return train, val


def mix_for_epoch(synth_config: SynthConfig, train_config: TrainConfig, epoch: int) -> SynthConfig:
    """The curriculum: crops of other photos only for `easy_epochs`, then the hard kinds (flip,
    border, resized) take their share step by step over `ramp_epochs`, the rest staying "other"."""
    share = min(1.0, max(0.0, (epoch - train_config.easy_epochs + 1) / (train_config.ramp_epochs + 1)))
    weights = dict(synth_config.kind_weights)
    hard = [kind for kind in weights if kind not in ("positive", "other")]
    moved = sum(weights[kind] for kind in hard) * (1 - share)
    weights.update({kind: weights[kind] * share for kind in hard})
    weights["other"] = weights.get("other", 0.0) + moved
    return replace(synth_config, kind_weights=weights)


def freeze_trunk(model: CropNet, frozen: bool) -> None:
    for parameter in model.trunk.parameters():
        parameter.requires_grad = not frozen


class Distributed(NamedTuple):
    """This process's place when launched by torchrun (`world_size` 1 otherwise)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def start_distributed(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join torchrun's process group (gloo on CPU, nccl on GPU) when its environment is there."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Distributed(), device
    place = Distributed(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda":
        device = torch.device("cuda", place.local_rank)  # one GPU per process
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return place, device


def train(images_dir: Path, out_dir: Path, *, model_config: ModelConfig, synth_config: SynthConfig,
          train_config: TrainConfig, device: torch.device, resume: Path | None = None,
          pretrained: Path | None = None, init: Path | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
          echo=print) -> dict:
    """Train and write `out_dir/{best.pt,last.pt,log.jsonl}`; returns the best validation metrics.

    With `resume`, the configs stored in that checkpoint are used (only the
    number of epochs may grow) and training continues after its last epoch.
    With `init`, a new run starts from that checkpoint's weights and model config
    (a fine-tune: the optimizer, schedule and curriculum start afresh).
    Under torchrun every process trains on its own share of each epoch's pairs
    (DistributedDataParallel); only rank 0 validates, logs and writes checkpoints.
    """
    if model_config.refine_crop_adds and train_config.stage != "crop-mined":
        raise TrainingError("--refine-crop-adds is for --stage crop-mined (it says how to take the head it trains)")
    if train_config.stage == "crop-mined":
        return train_on_answers(images_dir, out_dir, init=init, synth_config=synth_config, train_config=train_config,
                                device=device, max_pixels=max_pixels, adds=model_config.refine_crop_adds, echo=echo)
    place, device = start_distributed(device)
    try:
        return train_process(images_dir, out_dir, model_config=model_config, synth_config=synth_config,
                             train_config=train_config, device=device, resume=resume, pretrained=pretrained,
                             init=init, max_pixels=max_pixels, echo=echo if place.main else lambda _: None, place=place)
    finally:
        if place.world_size > 1:
            torch.distributed.destroy_process_group()


def train_process(images_dir: Path, out_dir: Path, *, model_config: ModelConfig, synth_config: SynthConfig,
                  train_config: TrainConfig, device: torch.device, resume: Path | None, pretrained: Path | None,
                  init: Path | None, max_pixels: int, echo, place: Distributed) -> dict:
    if sum(option is not None for option in (resume, pretrained, init)) > 1:
        raise TrainingError("choose one of --resume, --pretrained and --init")
    state = None
    initial = None  # the checkpoint a fine-tune starts from
    if init is not None:
        initial = load_checkpoint(init, map_location="cpu")
        stored = configs_from_checkpoint(initial)[0]  # the weights fix the architecture...
        if train_config.stage == "refine" and not stored.refine_zoom:  # ... but a refining stage may be added
            stored = replace(stored, refine_zoom=model_config.refine_zoom or 4.0,
                             refine_patch=model_config.refine_patch, refine_window=model_config.refine_window)
        if train_config.stage == "refine" and model_config.refine_pixels:  # ... and its pixel fit
            stored = replace(stored, refine_pixels=True)
        if train_config.stage == "crop-fit" and model_config.refine_crop_side:  # ... or its whole-crop fit
            stored = replace(stored, refine_crop_side=model_config.refine_crop_side)
        model_config = stored
    if resume is not None:
        state = load_checkpoint(resume, map_location="cpu")
        if "optimizer" not in state:
            raise TrainingError(f"{resume}: holds no optimizer state; resume from a last.pt")
        model_config, synth_config, stored = configs_from_checkpoint(state)
        stored.epochs = max(stored.epochs, train_config.epochs)
        train_config = stored

    refine = train_config.stage in ("refine", "crop-fit")
    if refine and not model_config.refine_zoom:  # said before any photo is decoded
        raise TrainingError(f"--stage {train_config.stage} needs a siamese model with a refining stage "
                            "(--refine-zoom), or --init from a siamese checkpoint")
    if train_config.stage == "crop-fit" and not model_config.refine_crop_side:
        raise TrainingError("--stage crop-fit trains the whole crop's fit: give --refine-crop-side")
    train_photos, val_photos = prepare_photos(images_dir, synth_config, max_pixels)
    echo(f"photos: {len(train_photos.photos)} train, {len(val_photos.photos)} validation"
         + (f", {len(train_photos.skipped)} skipped" if train_photos.skipped else ""))
    for line in describe_skipped(train_photos.skipped):
        echo(f"  {line}")

    if refine:
        transform = RefineTransform(input_size=model_config.input_size, zoom=model_config.refine_zoom,
                                    patch=model_config.refine_patch, window=model_config.refine_window,
                                    jitter=train_config.refine_jitter, crop_side=model_config.refine_crop_side)
    else:
        transform = PairTransform(input_size=model_config.input_size, fit=model_config.fit,
                                  masks=model_config.siamese)
    train_set = PairDataset(train_photos.photos, train_config.pairs_per_epoch, train_config.seed,
                            synth_config, transform, augment=True)
    # Validation pairs come from other photos and a different seed, fixed across epochs.
    val_set = PairDataset(val_photos.photos, train_config.val_pairs, train_config.seed + 1, synth_config, transform)
    loader_args = {"batch_size": train_config.batch_size, "num_workers": train_config.workers}
    # Each process its own shard (pair i goes to rank i % world_size); the pairs stay those of one process.
    sampler = torch.utils.data.DistributedSampler(train_set, place.world_size, place.rank, shuffle=False,
                                                  drop_last=True) if place.world_size > 1 else None
    train_loader = torch.utils.data.DataLoader(train_set, sampler=sampler, shuffle=False, drop_last=True,
                                               **loader_args)
    val_loader = torch.utils.data.DataLoader(val_set, shuffle=False, **loader_args)

    if state is not None:
        model = model_from_checkpoint(state, resume)
    elif initial is not None:
        model = model_from_checkpoint(initial, init, model_config)
    else:
        model = build_model(model_config)
    if pretrained is not None:
        if model_config.siamese:
            raise TrainingError("--pretrained loads the 6-channel model's trunk only")
        try:
            weights = torch.load(pretrained, map_location="cpu", weights_only=True)
            model.load_pretrained_trunk(weights)
        except Exception as error:  # a missing, damaged or foreign file: all one answer for the user
            raise TrainingError(f"{pretrained}: not usable torchvision ResNet weights ({error})") from None
    model.to(device)
    # What the optimizer steps through: the whole network, or only its refining stage (the first
    # stage stays as it is, and unused). `model` itself is what is validated and saved.
    trained = model.refiner if refine else model
    if train_config.stage == "crop-fit":  # the refining stage as it is, but for its whole-crop head
        for name, parameter in trained.named_parameters():
            parameter.requires_grad = name.startswith("crop_paired.")
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=train_config.lr,
                                  weight_decay=train_config.weight_decay)
    if place.world_size > 1:
        if train_config.freeze_epochs:
            raise TrainingError("--freeze-epochs cannot be used with torchrun (DDP needs a fixed set of parameters)")
        trained = torch.nn.parallel.DistributedDataParallel(trained, device_ids=[device] if device.type == "cuda"
                                                            else None)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda") if train_config.amp else None
    scheduler = make_scheduler(optimizer, train_config, len(train_loader))
    start_epoch, best = 0, None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = state["epoch"] + 1
        best = state["metrics"].get("best_paired_accuracy")

    out_dir.mkdir(parents=True, exist_ok=True)
    best_metrics = None
    for epoch in range(start_epoch, train_config.epochs):
        started = time.time()
        if not refine:
            freeze_trunk(model, epoch < train_config.freeze_epochs)
        train_set.set_epoch(epoch)
        train_set.config = mix_for_epoch(synth_config, train_config, epoch)
        losses = train_one_epoch(trained, train_loader, optimizer, scheduler, device, train_config.top_left_weight,
                                 header=f"epoch {epoch + 1}/{train_config.epochs}", scaler=scaler,
                                 show_progress=place.main, stage=train_config.stage)
        if not place.main:
            torch.distributed.barrier()  # wait while rank 0 validates and writes
            continue
        if refine:
            metrics = summarize_refine(predict_refine_loader(model.refiner, val_loader, device))
        else:
            metrics = summarize(predict_loader(model, val_loader, device))
        record = {"epoch": epoch, "lr": scheduler.get_last_lr()[0], "train": losses, "val": metrics,
                  "train_pairs": len(train_loader) * train_config.batch_size * place.world_size,
                  "processes": place.world_size, "seconds": round(time.time() - started, 1)}
        improved, best = keep_epoch(out_dir, model, record, best, synth_config=synth_config,
                                    train_config=train_config, optimizer=optimizer, scheduler=scheduler)
        if improved:
            best_metrics = metrics
        echo(f"epoch {epoch + 1}/{train_config.epochs}: loss {losses['loss']:.3f}, "
             f"val paired accuracy {metrics['paired_accuracy']:.3f}, "
             + (f"corner median {metrics['top_left_error_fraction']['median']:.4f} of the side" if refine
                else f"swapped {metrics.get('swapped_accuracy', float('nan')):.3f}")
             + (" (best)" if improved else ""))
        if place.world_size > 1:
            torch.distributed.barrier()
    return best_metrics or {}


def keep_epoch(out_dir: Path, model, record: dict, best: float | None, *, synth_config: SynthConfig,
               train_config: TrainConfig, **state) -> tuple[bool, float]:
    """After an epoch: its `record` appended to out_dir/log.jsonl, the model written to last.pt (with `state`,
    the optimizer and scheduler a `--resume` needs) and, when its validation paired accuracy beats `best`,
    to best.pt at half precision. Returns whether it did, and the best accuracy so far."""
    metrics = record["val"]
    improved = best is None or metrics["paired_accuracy"] > best
    if improved:
        best = metrics["paired_accuracy"]
    with open(out_dir / "log.jsonl", "a") as log:
        log.write(json.dumps(record) + "\n")
    common = {"synth_config": synth_config, "train_config": train_config, "epoch": record["epoch"],
              "metrics": {**metrics, "best_paired_accuracy": best}}
    if improved:
        save_checkpoint(out_dir / "best.pt", model, half=True, **common)
    save_checkpoint(out_dir / "last.pt", model, **state, **common)
    return improved, best


# A true crop's candidate counts as found, for `mine_looks`, within this many view px of the whole crop's
# fit: half its reach (CROP_FIT_RADIUS), so that the whole crop still fits there as at the corner itself.
FOUND_WITHIN = CROP_FIT_RADIUS / 2


class MinedLooks(NamedTuple):
    """The candidates a pipeline's closer looks judged over many pairs, labelled (see `mine_looks`)."""

    logits: torch.Tensor  # (n, 2) the refining stage's, without the whole-crop head
    fit: torch.Tensor  # (n, CROP_STATS) the whole crop's fit at each
    label: torch.Tensor  # (n,) 1: a true crop's corner found; 0: any corner of a negative pair
    weight: torch.Tensor  # (n,) each pair weighs 1 in all, shared by its candidates
    pair: torch.Tensor  # (n,) which pair
    pair_kinds: torch.Tensor  # (pairs,) every pair's kind, an index into PAIR_KINDS; pairs with no corner kept too


def mine_looks(predictor, dataset: PairDataset, desc: str, show_progress: bool = True) -> MinedLooks:
    """Answer every pair of `dataset` with `predictor` (recording: it also searches the whole crop, see
    `Predictor.searches_whole_crop`), keeping every corner its closer looks judged. A negative pair's
    corners are all "not a crop"; a true crop's are "a crop" where found (FOUND_WITHIN, in the order the
    pair was made) and left out elsewhere: the crop is there, but not at that corner, and what the whole
    crop's fit says there is no evidence either way."""
    columns = {key: [] for key in ("logits", "fit", "label", "weight", "pair")}
    pair_kinds = []
    for index in tqdm(range(len(dataset)), desc=desc, leave=False, dynamic_ncols=True, disable=not show_progress):
        pair = dataset.pair(index)
        pair_kinds.append(PAIR_KINDS.index(pair.kind))
        predictor.seen = []
        predictor.predict_arrays(pair.a, pair.b)
        chosen = []  # (logits, fit, label) of this pair's candidates
        for look in predictor.seen:
            for logits, fit, corner in zip(look.logits, look.fit, look.corners, strict=True):
                if pair.kind != "positive":
                    chosen.append((logits, fit, 0))
                elif look.swapped == pair.swapped and \
                        np.abs(corner - np.asarray(pair.top_left)).max() * look.fit_scale <= FOUND_WITHIN:
                    chosen.append((logits, fit, 1))
        for logits, fit, label in chosen:
            for key, value in zip(columns, (logits, fit, label, 1 / len(chosen), index), strict=True):
                columns[key].append(torch.as_tensor(value))
    predictor.seen = None
    if not columns["label"]:
        raise TrainingError(f"{desc}: no pair was looked at closely (too few or too small photos?)")
    stacked = {key: torch.stack(values) for key, values in columns.items()}
    return MinedLooks(stacked["logits"].float(), stacked["fit"].float(), stacked["label"].long(),
                      stacked["weight"].float(), stacked["pair"].long(), torch.tensor(pair_kinds))


def mined_loss(head, mined: MinedLooks) -> torch.Tensor:
    """Cross-entropy of the refining stage's logits plus the head's say, each pair weighing the same."""
    losses = F.cross_entropy(mined.logits + head(mined.fit), mined.label, reduction="none")
    return (losses * mined.weight).sum() / mined.weight.sum().clamp(min=1e-9)


def mined_metrics(crop_say, head, mined: MinedLooks) -> dict:
    """The loss (the head added whole, as trained), and per kind of pair how often the surest of its corners
    answers right with the head's say as answering takes it (`crop_say`: `Refiner.crop_logits`): "a crop"
    for a true crop, "not a crop" for a negative. A true crop with no corner near it is counted wrong.
    A rough stand-in for the pipeline: its thresholds, the scan's and the mirror check, are left out."""
    with torch.no_grad():
        loss = float(mined_loss(head, mined))
        crop_prob = (mined.logits + crop_say(mined.fit)).softmax(1)[:, 1]
    kinds = mined.pair_kinds
    surest = torch.zeros(len(kinds)).scatter_reduce(0, mined.pair, crop_prob, "amax", include_self=False)
    found = torch.zeros(len(kinds), dtype=torch.bool).index_fill_(0, mined.pair[mined.label == 1], True)
    positive = kinds == PAIR_KINDS.index("positive")
    right = torch.where(positive, found & (surest >= 0.5), surest < 0.5)  # a negative with no corner: "not a crop"
    by_kind = {kind: float(right[kinds == index].float().mean())
               for index, kind in enumerate(PAIR_KINDS) if (kinds == index).any()}
    return {"loss": loss, "paired_accuracy": float(right.float().mean()), "accuracy_by_kind": by_kind,
            "candidates": len(mined.label)}


def train_on_answers(images_dir: Path, out_dir: Path, *, init: Path | None, synth_config: SynthConfig,
                     train_config: TrainConfig, device: torch.device, max_pixels: int, adds: bool = False,
                     echo=print) -> dict:
    """`--stage crop-mined`: train the refining stage's whole-crop head at the corners answering really finds.

    The crop-fit stage trains that head at simulated corners (the truth plus noise), which is not where
    the refining stage settles on flat content; so there it may only veto. Here `--init`'s model answers
    `pairs_per_epoch` pairs of the training photos, and `val_pairs` of the validation photos, as
    `predict --method net` does, and every corner its closer looks judged is kept with the refining
    stage's logits and the whole crop's fit there (`mine_looks`; cached in out_dir/mined.pt, keyed on
    the checkpoint's contents, the photos and the synthesis settings, so a second run trains at once).
    Mining also looks where answering with an adding head would: at the whole crop's best place around
    a corner the looks turned down (`Predictor.whole_crop_place`). Then only the head is trained, its
    say added to those fixed logits, `epochs` passes of mini-batches. With `adds` (--refine-crop-adds)
    the checkpoint says that answering takes the head's say whole and searches the whole crop so
    (ModelConfig.refine_crop_adds); without, a veto, as the crop-fit stage's head. Mining is one
    process: not for torchrun.
    """
    from .predict import Predictor

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainingError("--stage crop-mined answers pairs one by one: run it without torchrun")
    if init is None:
        raise TrainingError("--stage crop-mined trains the head of a trained model: give --init")
    initial = load_checkpoint(init, map_location="cpu")
    model_config = configs_from_checkpoint(initial)[0]
    if not (model_config.refine_zoom and model_config.refine_crop_side):
        raise TrainingError(f"{init}: --stage crop-mined needs a model with a whole-crop fit (--refine-crop-side)")
    train_photos, val_photos = prepare_photos(images_dir, synth_config, max_pixels)
    echo(f"photos: {len(train_photos.photos)} train, {len(val_photos.photos)} validation")

    cache = out_dir / "mined.pt"
    key = {"init": hashlib.sha256(Path(init).read_bytes()).hexdigest(), "synth": asdict(synth_config),
           "photos": train_photos.names + val_photos.names, "seed": train_config.seed, "max_pixels": max_pixels,
           "pairs": train_config.pairs_per_epoch, "val_pairs": train_config.val_pairs}
    stored = torch.load(cache, weights_only=False) if cache.exists() else None
    if stored is not None and stored["key"] == key:
        mined, val_mined = MinedLooks(*stored["train"]), MinedLooks(*stored["val"])
        echo(f"mined looks read from {cache}")
    else:
        predictor = Predictor("net", init, device)
        # The pairs as evaluate draws them (no augmentation); validation from other photos and another seed.
        mined = mine_looks(predictor, PairDataset(train_photos.photos, train_config.pairs_per_epoch,
                                                  train_config.seed, synth_config, transform=None), "mining")
        val_mined = mine_looks(predictor, PairDataset(val_photos.photos, train_config.val_pairs,
                                                      train_config.seed + 1, synth_config, transform=None),
                               "mining validation")
        out_dir.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "train": tuple(mined), "val": tuple(val_mined)}, cache)
    echo(f"candidates: {len(mined.label)} train ({int(mined.label.sum())} at true corners), "
         f"{len(val_mined.label)} validation")

    model = model_from_checkpoint(initial, init, replace(model_config, refine_crop_adds=adds))
    head = model.refiner.crop_paired  # starts as --init's: trained at simulated corners
    generator = torch.Generator().manual_seed(train_config.seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay)
    out_dir.mkdir(parents=True, exist_ok=True)
    best, best_metrics = None, {}
    for epoch in range(train_config.epochs):
        started = time.time()
        head.train()
        order = torch.randperm(len(mined.label), generator=generator)
        for start in range(0, len(order), train_config.batch_size):
            chosen = order[start:start + train_config.batch_size]
            loss = mined_loss(head, mined._replace(logits=mined.logits[chosen], fit=mined.fit[chosen],
                                                   label=mined.label[chosen], weight=mined.weight[chosen]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        head.eval()  # so that crop_logits answers as `predict` will: whole, or a veto
        losses, metrics = (mined_metrics(model.refiner.crop_logits, head, part) for part in (mined, val_mined))
        record = {"epoch": epoch, "lr": train_config.lr, "train": losses, "val": metrics,
                  "seconds": round(time.time() - started, 1)}
        improved, best = keep_epoch(out_dir, model, record, best, synth_config=synth_config,
                                    train_config=train_config)
        if improved:
            best_metrics = metrics
        echo(f"epoch {epoch + 1}/{train_config.epochs}: loss {losses['loss']:.3f}, val loss {metrics['loss']:.3f}, "
             f"val paired accuracy {metrics['paired_accuracy']:.3f}" + (" (best)" if improved else ""))
    return best_metrics
