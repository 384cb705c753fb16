"""The standard FID Inception-v3 (optional extra): only for comparison with published numbers.

The network is torch-fidelity's port of the TF graph that FID (Heusel et al., 2017) and the
Inception Score (Salimans et al., 2016) were defined with; its 2048-d pool features feed FID/KID
and its 1008-way ``logits_unbiased`` the IS. ImageNet features judge grayscale medical images
poorly, which is why ``domain`` features are the default here. Nothing is downloaded: weights come
from ``--inception-weights PATH`` or the usual torch hub cache. torch-fidelity (and so torchvision)
is imported only inside :func:`load_inception`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from synthmed.errors import SynthmedError
from synthmed.fileio import sha256_file
from synthmed.metrics.extractor import FEATURE_EXTRACTORS, FeatureExtractor

WEIGHT_FILES = ("weights-inception-2015-12-05-6726825d.pth",  # torch-fidelity
                "pt_inception-2015-12-05-6726825d.pth")       # pytorch-fid, same layout
EXPECTED_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Mixed_5b.branch1x1.conv.weight": (64, 192, 1, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}
HOW_TO_GET = ("install the extra with `pip install 'synthmed[inception]'` and pass "
              f"--inception-weights PATH (torch-fidelity's {WEIGHT_FILES[0]})")


def cached_weight_paths() -> list[Path]:
    """Where the weights usually live: torch hub's checkpoints folder."""
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [hub / name for name in WEIGHT_FILES]


def find_inception_weights(weights: str | os.PathLike | None = None) -> Path:
    """``weights`` if given (it must exist), else the first cached file; else a one-line error."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise SynthmedError(f"--inception-weights {path}: file not found; {HOW_TO_GET}")
        return path
    for path in cached_weight_paths():
        if path.is_file():
            return path
    raise SynthmedError(f"Inception-v3 weights not found in {cached_weight_paths()[0].parent}; "
                        f"{HOW_TO_GET}")


def check_inception_weights(path: str | os.PathLike) -> None:
    """Refuse a file that is not an FID Inception-v3 state dict before building the network."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise SynthmedError(f"{path}: not a readable PyTorch weights file ({type(e).__name__}); "
                            f"{HOW_TO_GET}") from None
    if not isinstance(state, dict):
        raise SynthmedError(f"{path}: expected an Inception-v3 state dict; {HOW_TO_GET}")
    for key, shape in EXPECTED_SHAPES.items():
        got = state.get(key)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != shape:
            found = tuple(got.shape) if isinstance(got, torch.Tensor) else "missing"
            raise SynthmedError(f"{path}: not FID Inception-v3 weights ({key}: expected "
                                f"{shape}, found {found}); {HOW_TO_GET}")


def load_inception(weights: str | os.PathLike | None = None, *,
                   batch_size: int = 32) -> FeatureExtractor:
    """The FID Inception-v3 as a :class:`FeatureExtractor`: 2048-d features and 1008-way logits.

    Gray images are repeated to 3 channels (in :func:`~synthmed.metrics.features.prepare_images`);
    torch-fidelity resizes to 299x299 with its TF1-compatible bilinear interpolation.
    """
    path = find_inception_weights(weights)
    check_inception_weights(path)
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as e:
        raise SynthmedError(f"the inception features need torch-fidelity ({e.name or e} is not "
                            f"importable); {HOW_TO_GET}") from None
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                          feature_extractor_weights_path=str(path))
    except RuntimeError as e:
        raise SynthmedError(f"{path}: weights do not fit torch-fidelity's Inception-v3 "
                            f"({str(e).splitlines()[0]}); {HOW_TO_GET}") from None
    return FeatureExtractor(net, name="inception", input_size=None, in_channels=3,
                            input_range="uint8", weights_sha256=sha256_file(path),
                            batch_size=batch_size,
                            info={"weights_file": str(path), "feature_dim": 2048,
                                  "internal_resize": "299x299, TF1-compatible bilinear"})


def _inception_factory(weights: str | os.PathLike | None = None, **_: object) -> FeatureExtractor:
    return load_inception(weights)


FEATURE_EXTRACTORS.register("inception", _inception_factory)
