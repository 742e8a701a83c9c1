"""Recipes: validated TOML describing a whole run (pretraining + fine-tuning stages).

A recipe may name ``base = "other.toml"`` (resolved relative to its own file); its tables are merged
over the base's, key by key, while arrays (``finetune``) replace the base's whole. Command-line
overrides (``--set pretrain.epochs=10``, ``--set finetune.0.epochs=3``) are applied last. Values
left unset in the file (``lr``, ``warmup_epochs``) are filled from the backbone's paper defaults, so
the *resolved* recipe saved in a run directory reproduces the run on its own.

Key names are a public interface (the TUI, sweeps and scripts address them): ``seed``,
``data.dataset``, ``data.root``, ``model.backbone``, ``pretrain.method``, ``pretrain.epochs``,
``pretrain.resolution``, ``finetune`` (array of stages with ``epochs``, ``resolution``…).
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    WrapValidator,
    field_validator,
    model_validator,
)

from idmm_tui.errors import RecipeError, UnknownNameError, describe_os_error, not_utf8, suggest

#: ``pretrain.method`` of the random-init baseline: no pretraining stage at all.
NO_PRETRAINING = "none"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Which images to train on."""

    dataset: str = Field("embedded", description="dataset registry name (`idmm data list`)")
    root: str = Field("", description="folder holding the dataset; empty = the dataset's default")
    download: bool = Field(False, description="let torchvision download the dataset when missing")
    num_workers: int = Field(2, ge=0, le=64, description="image-decoding worker processes")
    cache: Literal["auto", "yes", "no"] = Field(
        "auto", description="decode all images once into memory (auto: when they fit in 2 GiB)"
    )
    classes: list[int] = Field(
        default_factory=list,
        description="keep only these class indices (relabelled 0..k-1 in this order); empty = all classes",
    )
    skip_bad_images: bool = Field(
        False, description="leave out images that cannot be decoded (named in the run log) instead of stopping"
    )


class ModelConfig(_Strict):
    """Which backbone to train."""

    backbone: str = Field("vit_micro_p4", description="backbone registry name (`idmm models`)")
    drop_path: float = Field(0.1, ge=0.0, lt=1.0, description="stochastic depth rate")


class OptimConfig(_Strict):
    """Shared optimiser / schedule settings of one stage (linear warmup, cosine to min_lr)."""

    epochs: int = Field(ge=0, le=100_000, description="epochs of this stage (0 skips it)")
    resolution: int = Field(ge=8, le=1024, description="input size in pixels (square)")
    batch_size: int = Field(256, ge=1, le=65_536, description="total batch over all devices")
    lr: float | None = Field(None, gt=0.0, le=10.0, description="peak learning rate; unset = backbone default")
    min_lr: float = Field(0.0, ge=0.0, description="learning rate at the end of the cosine")
    weight_decay: float = Field(1e-3, ge=0.0, le=10.0)
    warmup_epochs: float | None = Field(
        None, ge=0.0, description="linear warmup length (per iteration); unset = backbone default"
    )
    grad_clip: float = Field(0.0, ge=0.0, description="max grad norm; 0 = off")

    @model_validator(mode="after")
    def _warmup_fits(self) -> OptimConfig:
        if self.warmup_epochs is not None and self.epochs and self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) exceeds epochs ({self.epochs})")
        return self


class PretrainConfig(OptimConfig):
    """What every pretraining method shares (epochs, resolution, batch, optimiser, crops, monitor).

    Each method extends it with its own settings and defaults, in its own file under
    :mod:`idmm_tui.methods` (``IdmmConfig``, ``SimCLRConfig``, …); ``method`` selects which one a
    recipe's ``[pretrain]`` table is validated against (a discriminated union), so a key the chosen
    method does not have is an error that names the method.
    """

    method: str = Field("idmm", description="pretraining method (`idmm methods`); 'none' = random-init baseline")
    epochs: int = Field(800, ge=0, le=100_000)
    resolution: int = Field(112, ge=8, le=1024, description="small resolution of all crops (paper: 112)")
    global_crops: int = Field(2, ge=1, le=16, description="crops of scale global_scale per image")
    global_scale: tuple[float, float] = (0.14, 1.0)
    local_crops: int = Field(4, ge=0, le=32, description="crops of scale local_scale; 0 = no multi-crop")
    local_scale: tuple[float, float] = (0.05, 0.4)
    color_jitter: float = Field(0.8, ge=0.0, le=1.0, description="jitter strength (b, c, s; hue = s/4)")
    color_jitter_prob: float = Field(0.8, ge=0.0, le=1.0)
    grayscale_prob: float = Field(0.2, ge=0.0, le=1.0)
    blur_prob: float = Field(0.5, ge=0.0, le=1.0)
    knn_every: int = Field(
        0, ge=0, description="epochs between kNN-accuracy checks of the frozen features (labels only measure); 0 = off"
    )
    optimizer: Literal["auto", "adamw", "sgd"] = Field(
        "adamw", description="pretraining optimiser; auto = the method's Table 10 choice (its default)"
    )
    sampler: Literal["epoch", "repeat", "sliding"] = Field(
        "epoch",
        description="order of the images: epoch = each once per epoch (the paper); repeat = `revisits` copies "
        "of an image in one batch; sliding = each image in `revisits` consecutive batches (PIC); same compute",
    )
    revisits: int = Field(2, ge=1, le=64, description="visits grouped together by the repeat / sliding samplers")

    @model_validator(mode="after")
    def _scales_ordered(self) -> PretrainConfig:
        for key in ("global_scale", "local_scale"):
            lo, hi = getattr(self, key)
            if not 0.0 < lo <= hi <= 1.0:
                raise ValueError(f"{key} must satisfy 0 < low <= high <= 1, got {[lo, hi]}")
        return self

    @model_validator(mode="after")
    def _auto_optimizer(self) -> PretrainConfig:
        if self.optimizer == "auto":  # the resolved recipe names the optimiser actually used
            self.optimizer = type(self).model_fields["optimizer"].default
        return self


class FinetuneConfig(OptimConfig):
    """One supervised fine-tuning stage (DeiT-style recipe)."""

    epochs: int = Field(200, ge=0, le=100_000)
    resolution: int = Field(224, ge=8, le=1024)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0, description="label-smoothed cross-entropy epsilon")
    mixup_alpha: float = Field(0.5, ge=0.0, description="Mixup alpha, used on even epochs; 0 = off")
    cutmix_alpha: float = Field(0.5, ge=0.0, description="CutMix alpha, used on odd epochs; 0 = off")
    randaugment_ops: int = Field(2, ge=0, le=6, description="RandAugment ops per image; 0 = off")
    randaugment_magnitude: float = Field(9.0, ge=0.0, le=30.0)
    color_jitter: float = Field(0.4, ge=0.0, le=1.0)
    color_jitter_prob: float = Field(0.4, ge=0.0, le=1.0)
    grayscale_prob: float = Field(0.2, ge=0.0, le=1.0)
    crop_scale: tuple[float, float] = (0.08, 1.0)
    eval_crop_pct: float = Field(0.875, gt=0.0, le=1.0, description="center crop ratio at test time")


TRACKING_SINKS = ("tensorboard", "mlflow", "wandb")


class TrackConfig(_Strict):
    """Where the run is mirrored as it trains (``idmm run --track`` replaces ``sinks``); see idmm_tui.tracking."""

    sinks: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list, description="tensorboard, mlflow, wandb (a list, or one comma-separated string)"
    )
    dir: str = Field("", description="local stores (tensorboard/, mlruns, wandb/); empty = <runs dir>/tracking")
    mlflow_uri: str = Field("", description="MLflow tracking URI; empty = $MLFLOW_TRACKING_URI, else <dir>/mlruns")
    mlflow_experiment: str = Field("", description="MLflow experiment; empty = the sweep group, else 'idmm'")
    wandb_project: str = Field("idmm", min_length=1, description="W&B project")
    wandb_entity: str = Field("", description="W&B entity (team or user); empty = your default")
    wandb_group: str = Field("", description="W&B group; empty = the sweep group")
    wandb_mode: Literal["auto", "online", "offline"] = Field("auto", description="auto = $WANDB_MODE, else online")
    flush_timeout_s: float = Field(30.0, ge=0.0, le=3600.0, description="longest wait for the sinks at the end")

    @field_validator("sinks", mode="before")
    @classmethod
    def _comma_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip() and v.strip() != "none"]
        return value

    @field_validator("sinks")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


def pretrain_config_class(method: str) -> type[PretrainConfig]:
    """The settings model of pretraining method ``method`` (``UnknownNameError`` when there is none)."""
    from idmm_tui.methods.base import config_class

    return config_class(method)


def pretrain_config(**values: Any) -> PretrainConfig:
    """``[pretrain]`` settings for ``values["method"]`` (default ``idmm``), validated by that method's model."""
    return _pretrain_from_table(dict(values))


def _pretrain_from_table(raw: dict[str, Any]) -> PretrainConfig:
    """Validate a ``[pretrain]`` table: ``[pretrain.<method>]`` sub-tables fill in what it leaves unset.

    Every sub-table is checked against its own method's model (a typo in a method that is not chosen
    is still an error); only the chosen method's one is used. With ``method = "none"`` (no
    pretraining) any method's keys are accepted and ignored, so a sweep over methods has its
    random-init row; a key no method has is still an error.
    """
    from idmm_tui.methods.base import config_class, is_method_name

    method = raw.get("method", PretrainConfig.model_fields["method"].default)
    tables = {k: raw.pop(k) for k in list(raw) if isinstance(raw[k], dict) and is_method_name(k)}
    problems: list[dict[str, Any]] = []
    for name, table in tables.items():
        try:
            config_class(name).model_validate({**table, "method": name})
        except ValidationError as exc:
            problems += [_relocated(err, (name,)) for err in exc.errors()]
    try:
        cls = config_class(method) if isinstance(method, str) else PretrainConfig
    except UnknownNameError as exc:
        problems.append(
            {"type": "value_error", "loc": ("method",), "input": method, "ctx": {"error": ValueError(str(exc))}}
        )
        cls = None
    if problems:
        raise ValidationError.from_exception_data("pretrain", problems)
    if method == NO_PRETRAINING:  # the random-init row of a sweep over methods: their keys have no effect
        from idmm_tui.methods.base import pretrain_method_names

        owned = {k for m in pretrain_method_names() for k in config_class(m).model_fields}
        raw = {k: v for k, v in raw.items() if k in PretrainConfig.model_fields or k not in owned}
    return cls.model_validate({**tables.get(method, {}), **raw})


def _relocated(err: dict[str, Any], prefix: tuple[Any, ...]) -> dict[str, Any]:
    out = {"type": err["type"], "loc": (*prefix, *err["loc"]), "input": err.get("input")}
    if "ctx" in err:
        out["ctx"] = err["ctx"]
    return out


def _validate_pretrain(value: Any, handler: Any) -> PretrainConfig:
    if isinstance(value, PretrainConfig):
        if type(value) is pretrain_config_class(value.method):
            return value
        value = value.model_dump(exclude_unset=True) | {"method": value.method}
    if not isinstance(value, dict):
        return handler(value)
    return _pretrain_from_table(dict(value))


PretrainField = Annotated[SerializeAsAny[PretrainConfig], WrapValidator(_validate_pretrain)]


class Recipe(_Strict):
    """A whole run: data, backbone, pretraining and the fine-tuning stages."""

    name: str = Field("", description="default run name prefix")
    description: str = ""
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "bf16", "off"] = Field("auto", description="auto = bf16 autocast on CUDA only")
    compile: bool = Field(
        False,
        description="torch.compile each stage's backbone (in place: checkpoints are unchanged); compiling costs "
        "time at the first step of each stage and of each new batch shape",
    )
    init: str = Field("", description="initial weights: '', 'zoo:NAME', a zoo folder or a run directory")
    init_head: bool = Field(
        False, description="keep the init model's classifier head (first stage fine-tuning, same classes)"
    )
    log_every: int = Field(10, ge=1, description="steps between metrics lines")
    eval_every: int = Field(1, ge=1, description="fine-tuning epochs between test evaluations")
    checkpoint_every_s: float = Field(60.0, ge=0.0, description="min seconds between epoch checkpoints")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    pretrain: PretrainField = Field(default_factory=pretrain_config)
    finetune: list[FinetuneConfig] = Field(default_factory=lambda: [FinetuneConfig()])
    track: TrackConfig = Field(default_factory=TrackConfig)


# ---------------------------------------------------------------------------------------------
# loading, inheritance and overrides


#: Recipes are small text files; a larger one, or one that is not a regular file (a FIFO, /dev/zero), is
#: refused as it is opened, so a hostile path cannot make idmm wait or fill memory.
MAX_RECIPE_BYTES = 1 << 20


def _read_toml(path: Path) -> dict[str, Any]:
    from idmm_tui.fsutil import read_text_file

    try:
        text = read_text_file(path, MAX_RECIPE_BYTES)
    except FileNotFoundError:
        raise RecipeError(f"recipe not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: {not_utf8(exc)}; save the recipe as UTF-8") from None
    except OSError as exc:
        raise RecipeError(describe_os_error(exc, f"cannot read recipe {path}")) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}") from None


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "finetune": [{"epochs": 2}]}`` -> ``{"a.b": 1, "finetune.0.epochs": 2}``.

    Dotted keys as ``--set`` and sweep axes address them (arrays of tables by index).
    """
    out: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                out.update(flatten(item, f"{path}.{i}."))
        else:
            out[path] = value
    return out


def recipe_keys(table: dict[str, Any]) -> dict[str, Any]:
    """The settings of a recipe table as dotted keys, the way ``--set`` names them.

    The chosen method's ``[pretrain.<method>]`` table reads as ``pretrain.<key>``; other methods' tables
    are left out (they do not apply to this run), and so is ``[track]`` (where a run is mirrored changes
    nothing in it). Used to compare runs and to match them to the paper.
    """
    table = {k: v for k, v in table.items() if k != "track"}
    pretrain = table.get("pretrain")
    if isinstance(pretrain, dict):
        method = pretrain.get("method", PretrainConfig.model_fields["method"].default)
        flat = {k: v for k, v in pretrain.items() if not isinstance(v, dict)}
        own = pretrain.get(method) if isinstance(method, str) else None
        table["pretrain"] = {**(own if isinstance(own, dict) else {}), **flat}
    return flatten(table)


def is_method_key(key: str) -> bool:
    """Whether a dotted ``pretrain.<key>`` belongs to one method's own settings (not shared by all)."""
    parts = key.split(".")
    return len(parts) == 2 and parts[0] == "pretrain" and parts[1] not in PretrainConfig.model_fields


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged onto ``base``: tables merge key by key, anything else (arrays too) replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_raw(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe's table with its ``base`` chain merged in (``base`` removed).

    A recipe that is no file here but names a shipped one (``demo``, ``recipes/demo.toml``) is read from idmm's own.
    """
    if not _seen and not path.expanduser().exists():
        from idmm_tui.shipped import shipped_recipe

        path = shipped_recipe(path) or path
    path = path.expanduser().resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise RecipeError(f"recipe inheritance cycle: {chain}")
    raw = _read_toml(path)
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise RecipeError(f"{path}: 'base' must be a file name string, got {base!r}")
    return deep_merge(load_raw(path.parent / base, (*_seen, path)), raw)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b.0.c=VALUE"`` -> (["a", "b", "0", "c"], value); VALUE is read as TOML, else as a string."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"--set expects KEY=VALUE, got {item!r}")
    text = text.strip()
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return key.split("."), value


def apply_override(raw: dict[str, Any], parts: list[str], value: Any, *, shown: str) -> None:
    """Set ``raw[parts...] = value`` in place; array elements are addressed by index."""
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit():
                raise RecipeError(f"--set {shown}: '{where}' indexes an array, use a number")
            index = int(part)
            if index > len(node):
                raise RecipeError(f"--set {shown}: '{where}' is out of range (the array has {len(node)} elements)")
            if index == len(node):
                node.append({})  # append a new stage: the rest comes from the defaults
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, [] if part == "finetune" else {})
        else:
            raise RecipeError(f"--set {shown}: '{'.'.join(parts[:depth])}' is not a table or array")


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _model_at(loc: tuple[Any, ...], raw: dict[str, Any]) -> Any:
    """The pydantic model that validates the table at ``loc`` (``[pretrain]``: the chosen method's)."""
    model: Any = Recipe
    parts = list(loc)
    if parts[:1] == ["pretrain"]:
        pretrain = raw.get("pretrain") if isinstance(raw.get("pretrain"), dict) else {}
        method = parts[1] if len(parts) > 1 and isinstance(pretrain.get(parts[1]), dict) else None
        try:
            model = pretrain_config_class(method or str(pretrain.get("method", "idmm")))
        except UnknownNameError:
            return None
        parts = parts[2:] if method else parts[1:]
    for part in parts:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if hasattr(a, "model_fields")), None)
        if model is None:
            return None
    return model


def _unknown_key(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """'unknown key' with a did-you-mean; under ``[pretrain]``, which method lacks it and which have it."""
    model = _model_at(loc[:-1], raw)
    close = suggest(str(loc[-1]), list(model.model_fields) if model is not None else [])
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    if loc[0] != "pretrain" or model is None:
        return "unknown key" + (f" ({hint})" if hint else "")
    from idmm_tui.methods.base import config_class, pretrain_method_names

    method = model.model_fields["method"].default
    owners = [m for m in pretrain_method_names() if loc[-1] in config_class(m).model_fields]
    where = ""
    if owners:
        where = (
            f"it is a setting of {', '.join(owners)}: put it under [pretrain.{owners[0]}] to keep it for "
            f"{owners[0]} runs only"
        )
    if where:  # a key of another method is no typo
        return f"unknown key for pretraining method {method!r} ({where})"
    return "unknown key" + (f" ({hint})" if hint else "") + f" for pretraining method {method!r}"


def _explain(exc: ValidationError, source: str, raw: dict[str, Any]) -> RecipeError:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after", "function-wrap"))
        key = _format_loc(loc) or "(recipe)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{key}: {_unknown_key(loc, raw)}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            lines.append(f"{key}: {msg}{shown}")
    return RecipeError(f"{source}: " + "; ".join(lines))


def validate(raw: dict[str, Any], source: str) -> Recipe:
    """A :class:`Recipe` from a raw table, or a :class:`RecipeError` naming each bad key and the source."""
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise _explain(exc, source, raw) from None


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, inherit, override and validate a recipe (backbone defaults are NOT filled in yet)."""
    path = Path(path)
    raw = load_raw(path)
    for item in overrides:
        parts, value = parse_override(item)
        apply_override(raw, parts, value, shown=item)
    source = str(path) + (f" (with --set {' '.join(overrides)})" if overrides else "")
    return validate(raw, source)


#: ``[pretrain]`` keys of one method or another in recipes saved by idmm 0.1, when every method's
#: settings shared one flat table (each method read only its own).
_SHARED_TABLE_KEYS_0_1 = frozenset(
    {
        "label_smoothing",
        "cutmix_alpha",
        "head_bias",
        "temperature",
        "proj_dim",
        "proj_hidden",
        "projection_mlp",
        "queue_size",
        "momentum",
        "teacher_temp",
        "teacher_temp_start",
        "teacher_temp_epochs",
        "center_momentum",
        "dino_out",
    }
)


def parse_saved_recipe(text: str, source: str) -> Recipe:
    """The resolved recipe a run directory keeps (``recipe.toml``), validated.

    A recipe saved by idmm 0.1 holds every method's keys in ``[pretrain]``; those the run's method does
    not have are dropped (that version never read them), so its runs still resume and report.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{source}: invalid TOML: {exc}") from None
    pretrain = raw.get("pretrain")
    if isinstance(pretrain, dict) and isinstance(pretrain.get("method", "idmm"), str):
        try:
            own = pretrain_config_class(pretrain.get("method", "idmm")).model_fields
        except UnknownNameError:
            own = None
        if own is not None:
            for key in [k for k in pretrain if k in _SHARED_TABLE_KEYS_0_1 and k not in own]:
                del pretrain[key]
    return validate(raw, source)


def fill_defaults(recipe: Recipe, lr: float, warmup_epochs: float) -> Recipe:
    """A copy with unset ``lr`` / ``warmup_epochs`` set to the backbone's paper defaults.

    Warmup is clipped to the stage length, so that short CPU runs stay valid.
    """
    out = recipe.model_copy(deep=True)
    for stage in [out.pretrain, *out.finetune]:
        if stage.lr is None:
            stage.lr = lr
        if stage.warmup_epochs is None:
            stage.warmup_epochs = float(min(warmup_epochs, stage.epochs))
    return out


def to_table(recipe: Recipe) -> dict[str, Any]:
    """The recipe as a TOML table: ``[pretrain]`` holds the shared keys, ``[pretrain.<method>]`` the
    method's own (so the file stays valid when ``--set pretrain.method=…`` picks another method)."""
    table = recipe.model_dump(mode="json", exclude_none=True)
    pretrain = table["pretrain"]
    own = {k: pretrain.pop(k) for k in list(pretrain) if k not in PretrainConfig.model_fields}
    if own:
        pretrain[recipe.pretrain.method] = own
    if recipe.track == TrackConfig():
        del table["track"]  # no tracking: recipes stay as they were
    return table


def to_toml(recipe: Recipe) -> str:
    """The recipe as TOML text (no ``None`` values: unset keys are left out)."""
    return tomli_w.dumps(to_table(recipe))


def save_recipe(recipe: Recipe, path: Path) -> None:
    """Write the recipe as TOML (atomically)."""
    from idmm_tui.fsutil import atomic_write_text

    atomic_write_text(path, to_toml(recipe))
