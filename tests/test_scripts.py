"""The scripts the training recipe depends on."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("style", ["shapes", "waves", "low_poly", "blobs"])
def test_flat_art_is_reproducible_and_flat(style):
    flat_art = load_script("make_flat_art")
    chosen = getattr(flat_art, style)
    first = np.asarray(flat_art.make_image(np.random.default_rng(3), styles=[chosen]))
    again = np.asarray(flat_art.make_image(np.random.default_rng(3), styles=[chosen]))
    assert np.array_equal(first, again)  # the recipe's --seed rebuilds the same training images
    assert first.dtype == np.uint8 and first.shape[2] == 3
    assert first.shape[1::-1] in flat_art.SIZES
    # Vector-art-like: most one-pixel steps are tiny, unlike a photograph's.
    grey = first.astype(np.float32).mean(2)
    assert np.median(np.abs(np.diff(grey, axis=1))) < 2.0
    assert np.ptp(grey) > 20  # ... but not one flat colour


def test_the_shipped_models_recipe_is_valid_bash_and_asks_train_only_for_its_options():
    """scripts/train_shipped_model.sh runs for hours, so it is not run here: bash must parse it, and every
    option its `detect.py train` lines give must be one `train` takes (a renamed option breaks the recipe)."""
    import re
    import subprocess

    from detect import cli

    recipe = SCRIPTS / "train_shipped_model.sh"
    subprocess.run(["bash", "-n", str(recipe)], check=True)
    known = {name for param in cli.commands["train"].params for name in param.opts}
    commands = re.findall(r"python detect\.py train (.*?)(?<!\\)\n", recipe.read_text(), flags=re.S)
    assert len(commands) == 5  # the five runs of README's "The shipped model"
    for command in commands:
        given = set(re.findall(r"(--[a-z-]+)", command))
        assert given and given <= known, given - known
