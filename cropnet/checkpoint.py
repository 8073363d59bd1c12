"""One way to save and one way to load a model, with everything needed to rebuild it."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch

from .config import ModelConfig, SynthConfig, TrainConfig, config_from_dict
from .errors import CheckpointError
from .model import build_model

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "model_config", "synth_config", "train_config", "epoch", "metrics")


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, *, synth_config: SynthConfig,
                    train_config: TrainConfig, epoch: int, metrics: dict,
                    optimizer=None, scheduler=None, half: bool = False) -> None:
    """Write atomically (a crash mid-write never leaves a half file where a good one was).

    `half=True` stores float16 weights: half the size, and the answers do not
    change measurably (weights are cast back to float32 on load).
    """
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    checkpoint = {
        "format_version": FORMAT_VERSION,
        "model": state,
        "model_config": asdict(model.config),
        "synth_config": asdict(synth_config),
        "train_config": asdict(train_config),
        "epoch": epoch,
        "metrics": metrics,
    }
    if optimizer is not None:
        checkpoint["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        checkpoint["scheduler"] = scheduler.state_dict()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read and check a checkpoint; raises CheckpointError with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file; all mean the same here
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not a cropnet checkpoint (missing fields)")
    if checkpoint["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {checkpoint['format_version']}, this version reads {FORMAT_VERSION}"
        )
    return checkpoint


def configs_from_checkpoint(checkpoint: dict) -> tuple[ModelConfig, SynthConfig, TrainConfig]:
    return (
        config_from_dict(ModelConfig, checkpoint["model_config"]),
        config_from_dict(SynthConfig, checkpoint["synth_config"]),
        config_from_dict(TrainConfig, checkpoint["train_config"]),
    )


def model_from_checkpoint(checkpoint: dict, path: str | os.PathLike = "checkpoint",
                          model_config: ModelConfig | None = None) -> torch.nn.Module:
    """Rebuild the network from the config stored inside the checkpoint, weights in float32.

    A `model_config` that adds a refining stage to the stored one gives the checkpoint's
    network with a new refining stage, started from its first stage's features; one that adds
    the pixel fit (or the whole crop's fit) to a refining stage gives that stage with a head for it that
    does not yet speak.
    """
    stored = configs_from_checkpoint(checkpoint)[0]
    model = build_model(model_config or stored)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in checkpoint["model"].items()}
    new_parts = ()  # prefixes of the weights model_config adds, which the checkpoint cannot have
    if model_config is not None and model_config.refine_zoom and not stored.refine_zoom:
        new_parts = ("refiner.",)
    elif model_config is not None and model_config.refine_pixels and not stored.refine_pixels:
        new_parts = ("refiner.pixel_paired.",)
    elif model_config is not None and model_config.refine_crop_side and not stored.refine_crop_side:
        new_parts = ("refiner.crop_paired.",)
    try:
        missing, unexpected = model.load_state_dict(state, strict=not new_parts)
    except RuntimeError:
        raise CheckpointError(f"{path}: weights do not match the stored model config") from None
    if new_parts and (unexpected or any(not key.startswith(new_parts) for key in missing)):
        raise CheckpointError(f"{path}: weights do not match the stored model config")
    if new_parts == ("refiner.",):
        model.start_refiner()
    return model


def export_checkpoint(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Make a shippable copy of a training checkpoint: float16 weights, no optimizer state."""
    checkpoint = load_checkpoint(source)
    model = model_from_checkpoint(checkpoint, source)
    _, synth_config, train_config = configs_from_checkpoint(checkpoint)
    save_checkpoint(destination, model, synth_config=synth_config, train_config=train_config,
                    epoch=checkpoint["epoch"], metrics=checkpoint["metrics"], half=True)
