"""The model zoo: share and reuse idmm-trained ViTs as timm-layout folders on the Hugging Face Hub.

One job per module:

* :mod:`~idmm_tui.zoo.export`    — a finished run stage → ``model.safetensors`` + ``config.json`` + model card
* :mod:`~idmm_tui.zoo.registry`  — the local registry (``$IDMM_ZOO_DIR``, default ``~/.cache/idmm/zoo``)
* :mod:`~idmm_tui.zoo.catalogue` — the repo's ``zoo/catalogue.toml``: short names → Hub repos, sha256, metrics
* :mod:`~idmm_tui.zoo.hub`       — push / pull with huggingface_hub (explicit endpoint and token)
* :mod:`~idmm_tui.zoo.ops`       — the user operations the CLI calls (list, show, push, pull, rm)

A recipe's ``init = "zoo:NAME"`` reads the local registry only (see :mod:`idmm_tui.transfer`): training
never touches the network.
"""
