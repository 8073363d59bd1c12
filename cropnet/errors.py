"""The tool's own error types. Each message is one line naming the file and the reason;
the CLI prints it and exits with code 2. Nothing here imports torch, so the CLI can
catch these without paying for it."""


class CropnetError(Exception):
    """Base of every error the tool reports to the user instead of a traceback."""


class ImageError(CropnetError):
    """A file that cannot be used as an image."""


class CheckpointError(CropnetError):
    """A checkpoint file that is missing, damaged or from an incompatible version."""


class FolderError(CropnetError):
    """A folder of photos with nothing usable in it."""


class TrainingError(CropnetError):
    """Training cannot use a file it was given (--resume, --pretrained)."""


class PairsFileError(CropnetError):
    """The --pairs CSV as a whole is unusable (wrong header)."""
