"""Training objectives: the pretraining methods (one file each, registered) and fine-tuning.

Adding a pretraining method = one new file here (or in a plugin package, entry point group
``idmm.methods``) with its settings model and a ``@register_method`` objective; see
:mod:`idmm_tui.methods.base` and docs/extending.md.
"""

from idmm_tui.methods.base import (
    METHODS,
    NO_PRETRAINING,
    Batch,
    Objective,
    TwoPart,
    config_class,
    get_method,
    method_names,
    register_method,
    unwrap,
)

__all__ = [
    "METHODS",
    "NO_PRETRAINING",
    "Batch",
    "Objective",
    "TwoPart",
    "config_class",
    "get_method",
    "method_names",
    "register_method",
    "unwrap",
]
