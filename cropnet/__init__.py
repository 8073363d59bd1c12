"""cropnet: tell whether one image is a crop of another, which one, and where.

Importing the package is cheap on purpose: nothing here imports torch, so the
CLI's help and input checks answer at once. Modules that need torch
(`model`, `train`, `evaluate`, `predict`, `checkpoint`) import it themselves.
"""

__version__ = "0.1.0"
