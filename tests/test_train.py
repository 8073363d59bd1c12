import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, textured_photo
from PIL import Image

from cropnet.checkpoint import export_checkpoint, load_checkpoint, model_from_checkpoint, save_checkpoint
from cropnet.config import PAIR_KINDS, ModelConfig, SynthConfig, TrainConfig
from cropnet.data import PairDataset, PairTransform
from cropnet.errors import CheckpointError, FolderError, TrainingError
from cropnet.evaluate import summarize
from cropnet.model import CropNet
from cropnet.train import compute_loss, mix_for_epoch, train


def batch_metrics(model, batch) -> dict:
    """Metrics of one forward pass in training mode (batch statistics, as the optimizer saw them)."""
    model.train()
    with torch.no_grad():
        output = model(batch["image"])
    records = {"paired_prob": output.paired_logits.softmax(1)[:, 1].numpy(),
               "swapped_prob": output.swapped_logits.softmax(1)[:, 1].numpy(),
               "top_left_pred": output.top_left.numpy(), **{k: v.numpy() for k, v in batch.items()}}
    return summarize(records)


def test_a_handful_of_pairs_can_be_overfit(tiny_model_config):
    """Eight fixed pairs, many steps: the loss must fall and the metrics must rise."""
    torch.manual_seed(0)
    photos = [textured_photo(i) for i in range(4)]
    dataset = PairDataset(photos, 8, seed=0, config=SynthConfig(), transform=PairTransform(input_size=64))
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=8)))
    assert 0 < batch["paired"].sum() < 8
    model = CropNet(tiny_model_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = batch_metrics(model, batch)
    losses = []
    for _ in range(60):
        loss, _ = compute_loss(model(batch["image"]), batch, top_left_weight=5.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    after = batch_metrics(model, batch)
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5])
    assert after["paired_accuracy"] == 1.0 > before["paired_accuracy"]
    assert after["swapped_accuracy"] == 1.0
    assert after["top_left_error_fraction"]["median"] < before["top_left_error_fraction"]["median"]


def test_masked_losses_ignore_negatives(tiny_model_config):
    model = CropNet(tiny_model_config).eval()
    output = model(torch.randn(2, 6, 64, 64))
    batch = {"paired": torch.tensor([0, 0]), "swapped": torch.tensor([1, 0]), "top_left": torch.rand(2, 2)}
    _, parts = compute_loss(output, batch, top_left_weight=5.0)
    assert parts["swapped"] == 0.0 and parts["top_left"] == 0.0


def test_checkpoint_round_trip(tmp_path, tiny_model_config):
    model = CropNet(tiny_model_config).eval()
    images = torch.randn(2, 6, 64, 64)
    save_checkpoint(tmp_path / "m.pt", model, synth_config=SynthConfig(), train_config=TrainConfig(epochs=3),
                    epoch=2, metrics={"paired_accuracy": 0.5})
    checkpoint = load_checkpoint(tmp_path / "m.pt")
    restored = model_from_checkpoint(checkpoint).eval()
    assert restored.config == tiny_model_config
    assert checkpoint["epoch"] == 2 and checkpoint["train_config"]["epochs"] == 3
    with torch.no_grad():
        assert torch.equal(model(images).paired_logits, restored(images).paired_logits)


def test_half_precision_checkpoint_is_smaller_and_close(tmp_path, tiny_model_config):
    model = CropNet(tiny_model_config).eval()
    common = {"synth_config": SynthConfig(), "train_config": TrainConfig(), "epoch": 0, "metrics": {}}
    save_checkpoint(tmp_path / "full.pt", model, **common)
    save_checkpoint(tmp_path / "half.pt", model, half=True, **common)
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size
    restored = model_from_checkpoint(load_checkpoint(tmp_path / "half.pt")).eval()
    images = torch.randn(2, 6, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(images).top_left, restored(images).top_left, atol=1e-2)


@pytest.mark.parametrize("content, reason", [
    (b"", "not a readable checkpoint"),
    (b"\x00garbage" * 100, "not a readable checkpoint"),
])
def test_damaged_checkpoint_is_a_clear_error(tmp_path, content, reason):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=reason):
        load_checkpoint(tmp_path / "bad.pt")


def test_truncated_and_foreign_checkpoints_are_clear_errors(tmp_path, tiny_model_config):
    save_checkpoint(tmp_path / "m.pt", CropNet(tiny_model_config), synth_config=SynthConfig(),
                    train_config=TrainConfig(), epoch=0, metrics={})
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a cropnet checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    checkpoint = torch.load(tmp_path / "m.pt", weights_only=True)
    checkpoint["format_version"] = 99
    torch.save(checkpoint, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.pt")


def test_train_writes_log_and_checkpoints_and_resumes(tmp_path, photo_folder):
    configs = {"model_config": ModelConfig(input_size=64, head_channels=8, head_hidden=16),
               "synth_config": SynthConfig(),
               "train_config": TrainConfig(epochs=1, pairs_per_epoch=16, val_pairs=8, batch_size=8, workers=0)}
    out = tmp_path / "run"
    train(photo_folder, out, device=torch.device("cpu"), echo=lambda _: None, **configs)
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    configs["train_config"] = TrainConfig(epochs=2)
    train(photo_folder, out, device=torch.device("cpu"), resume=out / "last.pt", echo=lambda _: None, **configs)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [0, 1]
    assert {"paired_accuracy", "precision", "recall", "accuracy_by_kind"} <= set(log[1]["val"])
    assert load_checkpoint(out / "last.pt")["epoch"] == 1


def test_init_fine_tunes_from_a_checkpoints_weights_and_model_config(tmp_path, photo_folder):
    start = ModelConfig(input_size=64, head_channels=8, head_hidden=16)
    configs = {"synth_config": SynthConfig(),
               "train_config": TrainConfig(epochs=1, pairs_per_epoch=16, val_pairs=8, batch_size=8, workers=0)}
    train(photo_folder, tmp_path / "first", model_config=start, device=torch.device("cpu"), echo=lambda _: None,
          **configs)
    # The command line's model config is ignored: the weights fix the architecture. With lr 0
    # nothing learns, so the parameters (not BatchNorm's running statistics) must be the first run's.
    configs["train_config"] = TrainConfig(epochs=1, pairs_per_epoch=16, val_pairs=8, batch_size=8, workers=0, lr=0.0)
    train(photo_folder, tmp_path / "tuned", model_config=ModelConfig(input_size=96), device=torch.device("cpu"),
          init=tmp_path / "first" / "last.pt", echo=lambda _: None, **configs)
    first, tuned = load_checkpoint(tmp_path / "first" / "last.pt"), load_checkpoint(tmp_path / "tuned" / "last.pt")
    assert tuned["model_config"] == first["model_config"]
    assert tuned["epoch"] == 0
    parameters = dict(model_from_checkpoint(first).named_parameters())
    for name, value in model_from_checkpoint(tuned).named_parameters():
        assert torch.equal(value, parameters[name]), name
    with pytest.raises(TrainingError, match="choose one"):
        train(photo_folder, tmp_path / "both", model_config=start, device=torch.device("cpu"),
              init=tmp_path / "first" / "last.pt", resume=tmp_path / "first" / "last.pt", echo=lambda _: None,
              **configs)


def test_training_on_a_folder_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "readme.txt").write_text("no pictures here")
    with pytest.raises(FolderError, match="no image files"):
        train(tmp_path, tmp_path / "run", model_config=ModelConfig(), synth_config=SynthConfig(),
              train_config=TrainConfig(), device=torch.device("cpu"), echo=lambda _: None)


def test_unusable_pretrained_weights_are_a_clear_error(tmp_path, photo_folder):
    (tmp_path / "weights.pth").write_bytes(b"not weights")
    with pytest.raises(TrainingError, match="weights.pth: not usable"):
        train(photo_folder, tmp_path / "run", model_config=ModelConfig(input_size=64), synth_config=SynthConfig(),
              train_config=TrainConfig(epochs=1, pairs_per_epoch=8, val_pairs=8, batch_size=8, workers=0),
              device=torch.device("cpu"), pretrained=tmp_path / "weights.pth", echo=lambda _: None)


def test_export_strips_optimizer_and_halves_weights(tmp_path, tiny_model_config):
    model = CropNet(tiny_model_config)
    optimizer = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path / "last.pt", model, synth_config=SynthConfig(), train_config=TrainConfig(),
                    epoch=4, metrics={"paired_accuracy": 0.5}, optimizer=optimizer)
    export_checkpoint(tmp_path / "last.pt", tmp_path / "ship.pt")
    shipped = load_checkpoint(tmp_path / "ship.pt")
    assert "optimizer" not in shipped and shipped["epoch"] == 4
    assert shipped["model"]["trunk.0.weight"].dtype == torch.float16


def test_curriculum_moves_hard_negatives_in_step_by_step():
    config = TrainConfig(easy_epochs=2, ramp_epochs=3)
    shares = [mix_for_epoch(SynthConfig(), config, epoch).kind_weights for epoch in range(7)]
    assert shares[0]["flip"] == shares[1]["flip"] == 0 and shares[1]["other"] == 0.5
    hard = [weights["flip"] + weights["border"] + weights["resized"] for weights in shares]
    assert hard[2:6] == pytest.approx([0.375 * step / 4 for step in range(1, 5)])
    assert shares[6] == SynthConfig().kind_weights
    assert all(sum(weights.values()) == pytest.approx(1.0) for weights in shares)
    assert all(weights["positive"] == 0.5 for weights in shares)


def test_siamese_model_trains_and_round_trips(tmp_path, photo_folder):
    """The correlation model through the same loop, in mixed precision (bfloat16 on CPU), then from its checkpoint."""
    model_config = ModelConfig(arch="siamese-resnet18", input_size=64, head_hidden=16, feature_dim=16)
    train_config = TrainConfig(epochs=1, pairs_per_epoch=16, val_pairs=8, batch_size=8, workers=0, amp=True)
    out = tmp_path / "run"
    train(photo_folder, out, model_config=model_config, synth_config=SynthConfig(), train_config=train_config,
          device=torch.device("cpu"), echo=lambda _: None)
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["epoch"] == 0 and checkpoint["train_config"]["amp"] is True
    model = model_from_checkpoint(checkpoint).eval()
    assert model.config == model_config
    dataset = PairDataset([textured_photo(i) for i in range(2)], 2, seed=0, config=SynthConfig(),
                          transform=PairTransform(input_size=64, masks=True))
    with torch.no_grad():
        output = model(torch.from_numpy(np.stack([dataset[i]["image"] for i in range(2)])))
    assert output.top_left.shape == (2, 2)


def test_refining_stage_is_added_to_a_siamese_checkpoint_and_trained_alone(tmp_path, photo_folder):
    """--stage refine with --init: the first stage's weights stay as they were, the new stage starts from
    its features and is saved in the same checkpoint, and `predict --method net` answers through it."""
    from cropnet.predict import Predictor

    first_config = ModelConfig(arch="siamese-resnet18", input_size=64, head_hidden=16, feature_dim=16)
    short = {"epochs": 1, "pairs_per_epoch": 16, "val_pairs": 8, "batch_size": 8, "workers": 0}
    train(photo_folder, tmp_path / "first", model_config=first_config, synth_config=SynthConfig(),
          train_config=TrainConfig(**short), device=torch.device("cpu"), echo=lambda _: None)
    train(photo_folder, tmp_path / "refine", model_config=ModelConfig(refine_patch=32, refine_window=96),
          synth_config=SynthConfig(), train_config=TrainConfig(**short, stage="refine"), device=torch.device("cpu"),
          init=tmp_path / "first" / "last.pt", echo=lambda _: None)
    first = model_from_checkpoint(load_checkpoint(tmp_path / "first" / "last.pt"))
    refined_checkpoint = load_checkpoint(tmp_path / "refine" / "last.pt")
    assert refined_checkpoint["model_config"]["refine_zoom"] == 4.0
    assert refined_checkpoint["model_config"]["refine_window"] == 96
    refined = model_from_checkpoint(refined_checkpoint)
    for name, value in first.state_dict().items():
        assert torch.equal(refined.state_dict()[name], value), name
    assert not torch.equal(refined.refiner.trunk[0].weight, first.trunk[0].weight)  # trained from there...
    train(photo_folder, tmp_path / "still", model_config=ModelConfig(refine_patch=32, refine_window=96),
          synth_config=SynthConfig(), train_config=TrainConfig(**short, stage="refine", lr=0.0),
          device=torch.device("cpu"), init=tmp_path / "first" / "last.pt", echo=lambda _: None)
    started = model_from_checkpoint(load_checkpoint(tmp_path / "still" / "last.pt"))
    assert torch.equal(started.refiner.trunk[0].weight, first.trunk[0].weight)  # ... started from the first stage
    log = [json.loads(line) for line in (tmp_path / "refine" / "log.jsonl").read_text().splitlines()]
    assert set(log[0]["train"]) == {"loss", "paired", "offsets"} and "top_left_error_fraction" in log[0]["val"]

    predictor = Predictor("net", tmp_path / "refine" / "last.pt", threshold=0.0)  # always "paired": see the corner
    photo = textured_photo(4, 300, 200)
    answer = predictor.predict_arrays(photo, photo[50:150, 100:220])
    assert answer.paired and answer.swapped is False
    assert 0 <= answer.top_left[0] <= 300 - 120 and 0 <= answer.top_left[1] <= 200 - 100
    with pytest.raises(TrainingError, match="refining stage"):
        train(photo_folder, tmp_path / "none", model_config=ModelConfig(), synth_config=SynthConfig(),
              train_config=TrainConfig(**short, stage="refine"), device=torch.device("cpu"), echo=lambda _: None)


def test_pixel_fit_is_added_to_a_refining_stage_and_trained_with_it(tmp_path, photo_folder):
    """--stage refine --refine-pixels --init from a refining checkpoint without it: the stage's old weights are
    the start, the pixel head is new (its last layer starts at zero) and is what training moves."""
    short = {"epochs": 1, "pairs_per_epoch": 16, "val_pairs": 8, "batch_size": 8, "workers": 0}
    small = ModelConfig(arch="siamese-resnet18", input_size=64, head_hidden=16, feature_dim=16, refine_zoom=4.0,
                        refine_patch=32, refine_window=96)
    train(photo_folder, tmp_path / "refine", model_config=small, synth_config=SynthConfig(),
          train_config=TrainConfig(**short, stage="refine"), device=torch.device("cpu"), echo=lambda _: None)
    train(photo_folder, tmp_path / "pixels", model_config=ModelConfig(refine_pixels=True), synth_config=SynthConfig(),
          train_config=TrainConfig(**short, stage="refine"), device=torch.device("cpu"),
          init=tmp_path / "refine" / "last.pt", echo=lambda _: None)
    checkpoint = load_checkpoint(tmp_path / "pixels" / "last.pt")
    assert checkpoint["model_config"]["refine_pixels"] is True and checkpoint["model_config"]["refine_window"] == 96
    model = model_from_checkpoint(checkpoint)
    assert model.refiner.pixel_paired[-1].weight.abs().sum() > 0  # trained away from its silent start
    before = model_from_checkpoint(load_checkpoint(tmp_path / "refine" / "last.pt"))
    assert torch.equal(model.trunk[0].weight, before.trunk[0].weight)  # the first stage untouched


def test_crop_fit_stage_trains_only_the_whole_crop_head(tmp_path, photo_folder):
    """--stage crop-fit --refine-crop-side --init: the new head is the only thing that moves, and `predict`
    (--method net) answers with it."""
    short = {"epochs": 1, "pairs_per_epoch": 16, "val_pairs": 8, "batch_size": 8, "workers": 0}
    small = ModelConfig(arch="siamese-resnet18", input_size=64, head_hidden=16, feature_dim=16, refine_zoom=4.0,
                        refine_patch=32, refine_window=96, refine_pixels=True)
    train(photo_folder, tmp_path / "refine", model_config=small, synth_config=SynthConfig(),
          train_config=TrainConfig(**short, stage="refine"), device=torch.device("cpu"), echo=lambda _: None)
    train(photo_folder, tmp_path / "crop", model_config=ModelConfig(refine_crop_side=48), synth_config=SynthConfig(),
          train_config=TrainConfig(**short, stage="crop-fit"), device=torch.device("cpu"),
          init=tmp_path / "refine" / "last.pt", echo=lambda _: None)
    model = model_from_checkpoint(load_checkpoint(tmp_path / "crop" / "last.pt"))
    assert model.config.refine_crop_side == 48 and model.config.refine_pixels
    assert model.refiner.crop_paired[-1].weight.abs().sum() > 0  # trained away from its silent start
    before = model_from_checkpoint(load_checkpoint(tmp_path / "refine" / "last.pt")).state_dict()
    for name, value in model.state_dict().items():
        if not name.startswith("refiner.crop_paired."):
            assert torch.equal(value, before[name]), name  # batch-norm statistics included

    from cropnet.predict import Predictor

    photo = textured_photo(5, 300, 200)
    predictor = Predictor("net", tmp_path / "crop" / "last.pt", threshold=0.0)  # always "paired": see the corner
    answer = predictor.predict_arrays(photo, photo[50:150, 100:220])
    assert answer.paired and answer.swapped is False
    assert 0 <= answer.top_left[0] <= 300 - 120 and 0 <= answer.top_left[1] <= 200 - 100
    with pytest.raises(TrainingError, match="--refine-crop-side"):
        train(photo_folder, tmp_path / "none", model_config=ModelConfig(), synth_config=SynthConfig(),
              train_config=TrainConfig(**short, stage="crop-fit"), device=torch.device("cpu"),
              init=tmp_path / "refine" / "last.pt", echo=lambda _: None)


def test_torchrun_trains_with_two_processes(tmp_path):
    """2 CPU processes under torchrun (gloo): one log and one set of checkpoints, every epoch's pairs seen once."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(4):
        Image.fromarray(textured_photo(seed)).save(folder / f"photo{seed}.png")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
               str(REPO / "detect.py"), "train", "--images", str(folder), "--out", str(out), "--epochs", "2",
               "--pairs-per-epoch", "16", "--val-pairs", "8", "--batch-size", "4", "--input-size", "64",
               "--workers", "0", "--device", "cpu"]
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [0, 1]  # rank 0 alone writes
    assert all(entry["processes"] == 2 and entry["train_pairs"] == 16 for entry in log)
    assert sorted(path.name for path in out.iterdir()) == ["best.pt", "last.pt", "log.jsonl"]
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert result.stdout.count("best validation paired accuracy") == 1


def test_mined_looks_label_a_true_crops_found_corners_and_every_corner_of_a_negative():
    """`mine_looks` keeps what every closer look judged: a true crop's corners near the truth are "a crop",
    its corners elsewhere left out; every corner of a negative pair is "not a crop"."""
    from cropnet.predict import SeenLook
    from cropnet.train import FOUND_WITHIN, mine_looks

    photos = [textured_photo(seed, 200, 150) for seed in range(3)]
    dataset = PairDataset(photos, 12, 0, SynthConfig(photo_max_side=None), transform=None)

    class Answering:  # stands in for Predictor("net"): two looks a pair, one corner at the truth, one 40 px off
        seen = None

        def predict_arrays(self, a, b):
            pair = dataset.pair(self.index)
            self.index += 1
            truth = np.asarray(pair.top_left if pair.top_left is not None else (10, 10), dtype=float)
            for shift in (0.0, 40.0):
                self.seen.append(SeenLook(torch.tensor([[1.0, 2.0]]), torch.tensor([[-5.0, -9.0, -3.0]]),
                                          np.array([truth + shift]), pair.swapped, FOUND_WITHIN / 2))

    answering = Answering()
    answering.index = 0
    mined = mine_looks(answering, dataset, "test", show_progress=False)
    kinds = [dataset.pair(i).kind for i in range(len(dataset))]
    positives = [i for i, kind in enumerate(kinds) if kind == "positive"]
    assert positives and len(positives) < len(kinds)
    assert len(mined.label) == len(positives) + 2 * (len(kinds) - len(positives))
    for index, kind in enumerate(kinds):
        mine = mined.pair == index
        if kind == "positive":  # only the corner at the truth: within FOUND_WITHIN view px (2 px here)
            assert mined.label[mine].tolist() == [1]
        else:
            assert mined.label[mine].tolist() == [0, 0]
        assert float(mined.weight[mine].sum()) == pytest.approx(1.0)  # each pair weighs the same
    assert mined.pair_kinds.tolist() == [PAIR_KINDS.index(kind) for kind in kinds]  # every pair, found or not
    assert answering.seen is None  # answering is left as it was


def test_crop_mined_stage_trains_the_whole_crop_head_from_answers(tmp_path, photo_folder):
    """--stage crop-mined --init: the head is trained from the looks answering took (cached for a second run),
    it is the only thing that moves, and the checkpoint says whether answering adds it."""
    short = {"epochs": 1, "pairs_per_epoch": 16, "val_pairs": 8, "batch_size": 8, "workers": 0}
    small = ModelConfig(arch="siamese-resnet18", input_size=64, head_hidden=16, feature_dim=16, refine_zoom=4.0,
                        refine_patch=32, refine_window=96, refine_pixels=True, refine_crop_side=48)
    train(photo_folder, tmp_path / "refine", model_config=small, synth_config=SynthConfig(),
          train_config=TrainConfig(**short, stage="refine"), device=torch.device("cpu"), echo=lambda _: None)
    mined = {**short, "epochs": 2, "pairs_per_epoch": 10, "val_pairs": 6, "stage": "crop-mined"}
    said, adds = [], []
    for flag in (False, True):  # --refine-crop-adds: answering takes the head's say whole (else a veto)
        said.append([])
        train(photo_folder, tmp_path / "mined", model_config=ModelConfig(refine_crop_adds=flag),
              synth_config=SynthConfig(), train_config=TrainConfig(**mined), device=torch.device("cpu"),
              init=tmp_path / "refine" / "last.pt", echo=said[-1].append)
        adds.append(load_checkpoint(tmp_path / "mined" / "last.pt")["model_config"]["refine_crop_adds"])
    assert adds == [False, True] and (tmp_path / "mined" / "mined.pt").exists()
    assert [any("read from" in line for line in run) for run in said] == [False, True]  # mined once, then read
    log = [json.loads(line) for line in (tmp_path / "mined" / "log.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in log] == [0, 1, 0, 1] and all(r["val"]["candidates"] > 0 for r in log)
    model = model_from_checkpoint(load_checkpoint(tmp_path / "mined" / "last.pt"))
    assert model.config.refine_crop_side == 48
    before = model_from_checkpoint(load_checkpoint(tmp_path / "refine" / "last.pt")).state_dict()
    moved = [name for name, value in model.state_dict().items() if not torch.equal(value, before[name])]
    assert moved and all(name.startswith("refiner.crop_paired.") for name in moved)
    with pytest.raises(TrainingError, match="--init"):
        train(photo_folder, tmp_path / "none", model_config=ModelConfig(), synth_config=SynthConfig(),
              train_config=TrainConfig(**mined), device=torch.device("cpu"), echo=lambda _: None)
    with pytest.raises(TrainingError, match="--refine-crop-adds"):  # it says how to take a crop-mined head
        train(photo_folder, tmp_path / "none", model_config=ModelConfig(refine_crop_adds=True),
              synth_config=SynthConfig(), train_config=TrainConfig(**short), device=torch.device("cpu"),
              echo=lambda _: None)
