"""Pretraining methods: a registry of objectives (one file each).

A method turns a backbone into a trainable module (backbone + its heads) and computes the
pretraining loss of one batch. Adding a method = one new file + one ``register_method`` call.
"""

from idmm_tui.methods import dino as _dino  # noqa: F401 (registers "dino")
from idmm_tui.methods import idmm as _idmm  # noqa: F401 (registers "idmm")
from idmm_tui.methods import moco as _moco  # noqa: F401 (registers "mocov2", "mocov3")
from idmm_tui.methods import simclr as _simclr  # noqa: F401 (registers "simclr")
from idmm_tui.methods import supcon as _supcon  # noqa: F401 (registers "supcon")
from idmm_tui.methods.base import (
    Batch,
    PretrainMethod,
    get_method,
    method_names,
    register_method,
)

__all__ = ["Batch", "PretrainMethod", "get_method", "method_names", "register_method"]
