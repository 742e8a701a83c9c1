"""The paper's published numbers (Tables 2-9), for showing beside a run whose setting matches.

The data is ``paper_results.toml`` next to this module: one ``[[result]]`` per number, its header
comment says where every table's protocol comes from. :func:`load_paper_results` parses it once;
:func:`find` selects the rows of one backbone / method / target dataset.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

PAPER_RESULTS_FILE = Path(__file__).with_name("paper_results.toml")

#: Names the data file may use beyond our registries (see its header); the registries need not lack them.
EXTRA_METHODS = frozenset({"supervised"})
EXTRA_DATASETS = frozenset({"imagenet"})
EXTRA_SOURCES = frozenset({"sin10k", "imagenet_random10k", "imagenet"})


@dataclass(frozen=True)
class PaperResult:
    """One number of the paper: a top-1 accuracy (%) and the setting it was obtained in."""

    table: str
    backbone: str
    method: str
    dataset: str
    source: str
    metric: str
    top1: float
    std: float | None = None
    stage: str = ""
    ablation: Mapping[str, Any] = field(default_factory=dict, hash=False)
    pretrain_epochs: int | None = None
    finetune_epochs: int | None = None
    pretrain_resolution: int | None = None
    finetune_resolution: int | None = None
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ablation", MappingProxyType(dict(self.ablation)))

    @property
    def key(self) -> tuple[Any, ...]:
        """What identifies the number: (table, backbone, method, dataset, source, stage, ablation)."""
        abl = tuple(sorted((k, repr(v)) for k, v in self.ablation.items()))
        return (self.table, self.backbone, self.method, self.dataset, self.source, self.stage, abl)


_FIELDS = {f.name for f in fields(PaperResult)}
_REQUIRED = {"table", "backbone", "method", "dataset", "source", "metric", "top1"}


def _parse(entry: dict[str, Any], index: int) -> PaperResult:
    unknown = set(entry) - _FIELDS
    missing = _REQUIRED - set(entry)
    if unknown or missing:
        raise ValueError(
            f"{PAPER_RESULTS_FILE.name} result #{index}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
        )
    values = dict(entry)
    values["top1"] = float(values["top1"])
    if "std" in values:
        values["std"] = float(values["std"])
    return PaperResult(**values)


@functools.cache
def _load(path: Path) -> tuple[PaperResult, ...]:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return tuple(_parse(entry, i) for i, entry in enumerate(data.get("result", [])))


def load_paper_results() -> list[PaperResult]:
    """Every number of ``paper_results.toml``, in file order (parsed once, a fresh list each call)."""
    return list(_load(PAPER_RESULTS_FILE))


def _same_value(paper: Any, query: Any) -> bool:
    """Equal, with text from a recipe override (``"0"``, ``"0.5"``, ``"true"``) read as its value."""
    if isinstance(query, str) and not isinstance(paper, str):
        text = query.strip().lower()
        if isinstance(paper, bool):
            return text == str(paper).lower()
        try:
            query = float(text)
        except ValueError:
            return False
    if isinstance(paper, bool) or isinstance(query, bool):
        return isinstance(paper, bool) and isinstance(query, bool) and paper == query
    if isinstance(paper, int | float) and isinstance(query, int | float):
        return float(paper) == float(query)
    return paper == query


def _same_ablation(paper: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    return set(paper) == set(query) and all(_same_value(paper[k], query[k]) for k in paper)


def find(
    results: list[PaperResult],
    *,
    backbone: str,
    method: str,
    dataset: str,
    source: str | None = None,
    table: str | None = None,
    ablation: Mapping[str, Any] | None = None,
) -> list[PaperResult]:
    """The results of ``backbone`` / ``method`` on target ``dataset``, in file order.

    ``source`` (pretraining dataset) and ``table`` narrow further when given. ``ablation``: ``None``
    = any; otherwise the row's switches must be exactly these keys with equal values (numbers and
    booleans also match their text form, e.g. ``{"pretrain.local_crops": "0"}``); ``{}`` selects the
    rows without ablation switches. Rows of one table can still differ in protocol (``stage``,
    ``finetune_epochs``, ``finetune_resolution``): check those against the run.
    """
    out = []
    for r in results:
        if (r.backbone, r.method, r.dataset) != (backbone, method, dataset):
            continue
        if source is not None and r.source != source:
            continue
        if table is not None and r.table != str(table):
            continue
        if ablation is not None and not _same_ablation(r.ablation, ablation):
            continue
        out.append(r)
    return out
