"""Named datasets: register, list, look up, and load a train/test split.

A dataset registers its loader with ``@register_dataset("name", ...)`` beside the loader (one module
per family: :mod:`~idmm_tui.data.tv_datasets`, :mod:`~idmm_tui.data.parsed_datasets`, …); the
registry imports every module of this package on first use, and the modules named by the
``idmm.datasets`` entry point group (plugins). ``embedded`` is the default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from idmm_tui.errors import UnknownNameError
from idmm_tui.registry import Registry

from .base import DEFAULT_ROOT, SPLITS, ClassSubset, DatasetSpec, LabeledImages, Loader

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
DATASETS: Registry[DatasetSpec] = Registry("dataset", "idmm_tui.data", "idmm.datasets")


def register_dataset(
    name: str,
    *,
    num_classes: int | None,
    description: str,
    default_root: str = DEFAULT_ROOT,
    downloadable: bool = False,
    paper_sizes: tuple[int | None, int | None] = (None, None),
) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader(root, split, download) -> LabeledImages`` as dataset ``name``.

    ``paper_sizes`` are the (train, test) image counts the paper's Table 1 gives (shown by
    ``idmm data list``); ``default_root`` is where it is looked for when ``data.root`` is empty.
    """

    def decorate(loader: Loader) -> Loader:
        DATASETS.add(
            name,
            DatasetSpec(
                name, num_classes, description, default_root, downloadable, paper_sizes[0], paper_sizes[1], loader
            ),
        )
        return loader

    return decorate


def dataset_names() -> list[str]:
    """All registered dataset names, sorted."""
    return sorted(DATASETS.names())


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec registered as ``name``; raises :class:`UnknownNameError` with close matches."""
    return DATASETS.get(name)


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
