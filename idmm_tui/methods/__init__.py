"""Pretraining methods: a registry of objectives (one file each).

A method turns a backbone into a trainable module (backbone + its heads) and computes the
pretraining loss of one batch. Adding a method = one new file + one ``register_method`` call.
"""

from idmm_tui.methods import idmm as _idmm  # noqa: F401  (registers "idmm")
from idmm_tui.methods.base import (
    Batch,
    PretrainMethod,
    get_method,
    method_names,
    register_method,
)

__all__ = ["Batch", "PretrainMethod", "get_method", "method_names", "register_method"]
