"""Named datasets: register, list, look up, and load a train/test split.

Importing this module registers the built-in datasets (``embedded`` is the default).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from idmm_tui.errors import UnknownNameError

from . import embedded_set, fashion_mnist, imagefolder, imagenet, parsed_datasets, tv_datasets
from .base import SPLITS, ClassSubset, DatasetSpec, LabeledImages

__all__ = [
    "DEFAULT_DATASET",
    "DatasetSpec",
    "LabeledImages",
    "dataset_names",
    "get_dataset_spec",
    "load_configured",
    "load_split",
    "register_dataset",
    "resolve_root",
]

DEFAULT_DATASET = "embedded"
_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` under ``spec.name`` (registering the same spec twice is a no-op)."""
    old = _REGISTRY.get(spec.name)
    if old is not None and old != spec:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def dataset_names() -> list[str]:
    """All registered dataset names, sorted."""
    return sorted(_REGISTRY)


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec registered as ``name``; raises :class:`UnknownNameError` with close matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("dataset", name, _REGISTRY) from None


def resolve_root(spec: DatasetSpec, root: str | Path | None) -> Path:
    """``root`` (or the spec's default when None/empty) with ``~`` expanded, made absolute."""
    chosen = os.fspath(root) if root not in (None, "") else spec.default_root
    return Path(os.path.expanduser(chosen or ".")).absolute()


def load_split(name: str, root: str | Path | None, split: str, download: bool = False) -> LabeledImages:
    """Load the ``"train"`` or ``"test"`` split of dataset ``name`` from ``root``.

    Raises :class:`UnknownNameError` for an unknown dataset or split and
    :class:`~idmm_tui.errors.DatasetNotFoundError` (naming the expected path and layout) when the
    files are not there.
    """
    spec = get_dataset_spec(name)
    if split not in SPLITS:
        raise UnknownNameError("split", split, SPLITS)
    return spec.loader(resolve_root(spec, root), split, bool(download))


def load_configured(data: Any, split: str) -> LabeledImages:
    """The split that a recipe's ``[data]`` table names: dataset, root, download and ``classes``."""
    from idmm_tui.errors import RecipeError

    images = load_split(data.dataset, data.root or None, split, data.download)
    if not data.classes:
        return images
    try:
        return ClassSubset(images, list(data.classes))
    except ValueError as exc:
        raise RecipeError(f"{exc} ({data.dataset} has {len(images.classes)} classes)") from None


for _module in (embedded_set, fashion_mnist, tv_datasets, parsed_datasets, imagefolder, imagenet):
    for _spec in _module.SPECS:
        register_dataset(_spec)
