from pathlib import Path

from setuptools import setup

version = {}
exec((Path(__file__).parent / "cropnet" / "__init__.py").read_text(), version)

setup(
    name="cropnet",
    version=version["__version__"],
    description="Tell whether one image is a cropped version of another, which one, and where.",
    long_description=(Path(__file__).parent / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=["cropnet"],
    py_modules=["detect"],
    # For non-editable installs: predict looks for sys.prefix/checkpoints/cropnet.pt;
    # cropnet-6ch.pt is the best 6-channel model, one --checkpoint away.
    data_files=[("checkpoints", ["checkpoints/cropnet.pt", "checkpoints/cropnet-6ch.pt"])],
    install_requires=[
        "torch>=2.1,<3",
        # The ResNet trunk is rebuilt in cropnet/model.py (importing torchvision costs seconds at every
        # predict); torchvision is kept for the tests that check that trunk against its own ResNet.
        "torchvision>=0.16,<1",
        "pillow>=10",
        "numpy>=1.24",
        "click>=8.1",
        "tqdm>=4.60",
        # Below 5: under opencv-python-headless 5.0.0.93, which a fresh install took on 2026-11-26, verification
        # answers differently (tests/test_verify.py: a resized crop of a gradient is turned down even without
        # the region test that the test exercises); 4.14 passes the suite.
        "opencv-python-headless>=4.5,<5",
    ],
    # matplotlib: the benchmark's plots and the learning curves (benchmarks/run.py, scripts/plot_curves.py)
    extras_require={"test": ["pytest>=7", "hypothesis>=6"], "plots": ["matplotlib>=3.5"]},
    entry_points={"console_scripts": ["detect=detect:cli"]},
)
