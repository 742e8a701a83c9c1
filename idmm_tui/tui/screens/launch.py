"""Launch a run: a recipe, a backbone, a dataset and a method, overrides, inline validation.

The form is turned into exactly the ``idmm run RECIPE --set KEY=VALUE …`` command a user would type
(shown under the form), validated by the core's ``resolve_recipe`` in a thread worker as you type,
and started as a background process. Registry and recipe loading import torch (seconds): that, too,
happens in a worker, never on the UI thread.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Input, Label, Select, Static

from idmm_tui.errors import IdmmError
from idmm_tui.tui.core_imports import CORE_IMPORT
from idmm_tui.tui.messages import LaunchRequested, RecipeChecked, RegistriesLoaded
from idmm_tui.tui.screens.base import DashboardScreen

#: Form field -> recipe key. Selects and inputs left at the recipe's value add no override.
FIELDS = {
    "backbone": "model.backbone",
    "dataset": "data.dataset",
    "root": "data.root",
    "method": "pretrain.method",
    "pretrain_epochs": "pretrain.epochs",
    "finetune_epochs": "finetune.0.epochs",
    "seed": "seed",
}
SELECTS = ("backbone", "dataset", "method")
INPUTS = ("root", "pretrain_epochs", "finetune_epochs", "seed")
LABELS = {
    "recipe": "Recipe",
    "name": "Run name",
    "backbone": "Backbone",
    "dataset": "Dataset",
    "root": "Data root",
    "method": "Pretraining",
    "pretrain_epochs": "Pretrain epochs",
    "finetune_epochs": "Fine-tune epochs",
    "seed": "Seed",
    "extra": "More --set",
}


def recipe_defaults(recipe: Any) -> dict[str, Any]:
    """The recipe's own values of the form's fields."""
    return {
        "backbone": recipe.model.backbone,
        "dataset": recipe.data.dataset,
        "root": recipe.data.root,
        "method": recipe.pretrain.method,
        "pretrain_epochs": recipe.pretrain.epochs,
        "finetune_epochs": recipe.finetune[0].epochs if recipe.finetune else None,
        "seed": recipe.seed,
        "name": recipe.name,
    }


def form_overrides(values: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """``KEY=VALUE`` overrides for the fields whose value differs from the recipe's."""
    out = []
    for field, key in FIELDS.items():
        value = values.get(field)
        if value in (None, "") or str(value) == str(defaults.get(field)):
            continue
        if field == "finetune_epochs" and defaults.get("finetune_epochs") is None:
            key = "finetune.0.epochs"
        out.append(f"{key}={json.dumps(value) if field == 'root' else value}")
    return out


def blamed_fields(message: str, extra_keys: list[str]) -> set[str]:
    """The form fields an error message is about (to highlight them)."""
    detail = message
    if "(with --set " in detail:
        detail = detail.split("): ", 1)[-1]
    elif ": " in detail and detail.split(": ", 1)[0].endswith(".toml"):
        detail = detail.split(": ", 1)[1]
    head = re.split(r"[:\s=]", detail, maxsplit=1)[0]
    fields = {field for field, key in FIELDS.items() if key == head}
    if head in extra_keys:
        fields.add("extra")
    for words, field in (
        ("unknown backbone", "backbone"),
        ("with backbone", "backbone"),
        ("unknown dataset", "dataset"),
        ("unknown pretraining method", "method"),
        ("More --set", "extra"),
        ("Run name", "name"),
    ):
        if words in detail:
            fields.add(field)
    if detail.startswith("dataset ") and "not found" in detail:
        fields.update(("dataset", "root"))
    return fields


def find_recipes(directory: Path | None) -> list[Path]:
    if directory is None or not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.toml") if p.is_file())


class LaunchScreen(DashboardScreen):
    """The launch form."""

    HELP_TITLE = "Launch"
    HELP_ORDER = 40
    HELP_EXTRA = (("tab", "next field"), ("enter", "open a list"))

    BINDINGS = [
        Binding("ctrl+s", "launch", "Launch", priority=True, tooltip="launch (once the form checks out)"),
        Binding("escape", "cancel", "Cancel", tooltip="back without launching"),
    ]

    def __init__(self, recipes: list[Path], selected: Path | None = None) -> None:
        super().__init__()
        self.recipes = recipes
        self.selected = selected or next((p for p in recipes if p.name == "demo.toml"), recipes[0] if recipes else None)
        self.token = 0
        self.result: RecipeChecked | None = None
        self.defaults: dict[str, Any] = {}
        self.registries: RegistriesLoaded | None = None
        self._timer = None
        self._data_checked: dict[tuple, str] = {}  # (dataset, root, download, finetunes) -> error or ""

    def compose(self) -> ComposeResult:
        yield Static(
            Text.assemble(("launch a run", "bold"), ("   from a recipe, with overrides; checked as you type", "dim")),
            classes="title-bar",
        )
        with VerticalScroll(id="launch-form"):
            recipes = [(p.name, str(p)) for p in self.recipes]
            yield from self._row(
                "recipe",
                Select(
                    recipes,
                    id="recipe",
                    compact=True,
                    prompt="no recipes found",
                    value=str(self.selected) if self.selected else Select.NULL,
                    allow_blank=not self.recipes,
                ),
            )
            yield from self._row(
                "name", Input(id="name", placeholder="default: <recipe name>-<date>-<time>", compact=True)
            )
            for field in ("backbone", "dataset"):
                yield from self._row(field, Select([], id=field, prompt="loading…", compact=True))
            yield from self._row("root", Input(id="root", placeholder="the dataset's default location", compact=True))
            yield from self._row("method", Select([], id="method", prompt="loading…", compact=True))
            for field in ("pretrain_epochs", "finetune_epochs", "seed"):
                yield from self._row(
                    field, Input(id=field, type="integer", placeholder="from the recipe", compact=True)
                )
            yield from self._row(
                "extra",
                Input(
                    id="extra", compact=True, placeholder="KEY=VALUE … e.g. pretrain.lr=1e-3 finetune.0.batch_size=64"
                ),
            )
            yield Static(Text("checking…", style="dim"), id="launch-status")
            yield Static(id="launch-command", classes="hint")
            with Horizontal(id="launch-buttons"):
                yield Button("Launch (ctrl+s)", id="launch", variant="primary", disabled=True, compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)
        yield Footer(compact=True, show_command_palette=False)

    def _row(self, field: str, widget) -> ComposeResult:
        with Horizontal(classes="form-row", id=f"row-{field}"):
            yield Label(LABELS[field], classes="form-label")
            yield widget

    def on_mount(self) -> None:
        self.load_registries()
        self.schedule_check(0.0)
        if self.recipes:
            self.query_one("#recipe", Select).focus()

    # -- workers ---------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="registries", exit_on_error=False)
    def load_registries(self) -> None:
        try:
            with CORE_IMPORT:
                from idmm_tui.data.registry import dataset_names
                from idmm_tui.methods import method_names
                from idmm_tui.models.registry import backbone_names

                loaded = RegistriesLoaded(backbone_names(), dataset_names(), method_names())
            self.post_message(loaded)
        except Exception as exc:  # shown in the form, never fatal
            self.post_message(RegistriesLoaded([], [], [], error=f"cannot load the registries: {exc}"))

    @work(thread=True, exclusive=True, group="check", exit_on_error=False)
    def check(self, token: int, recipe_path: str, values: dict[str, Any], extra: str, name: str) -> None:
        with CORE_IMPORT:  # the first check imports the core (and the registries find their entries)
            self._check(token, recipe_path, values, extra, name)

    def _check(self, token: int, recipe_path: str, values: dict[str, Any], extra: str, name: str) -> None:
        defaults: dict[str, Any] = {}
        try:
            from idmm_tui.launch import resolve_recipe
            from idmm_tui.recipe import load_recipe
            from idmm_tui.stages import plan_stages

            defaults = recipe_defaults(load_recipe(recipe_path))
            try:
                more = shlex.split(extra)
            except ValueError as exc:
                raise IdmmError(f"More --set: {exc}") from None
            bad = [item for item in more if "=" not in item]
            if bad:
                raise IdmmError(f"More --set: expected KEY=VALUE, got {bad[0]!r}")
            overrides = form_overrides(values, defaults) + more
            recipe = resolve_recipe(recipe_path, overrides)
            self._check_data(recipe)
            if name and (name in (".", "..") or "/" in name):
                raise IdmmError(f"Run name {name!r}: use letters, digits, '-', '_' and '.'")
            if name and (self.dashboard.runs_dir / name).exists():
                raise IdmmError(f"Run name {name!r}: {self.dashboard.runs_dir / name} already exists")
            plan = " → ".join(f"{s.name} {s.cfg.epochs} ep @{s.cfg.resolution}px" for s in plan_stages(recipe))
            self.post_message(RecipeChecked(token, True, "", defaults, plan, recipe, overrides))
        except IdmmError as exc:
            self.post_message(RecipeChecked(token, False, str(exc), defaults))
        except Exception as exc:  # anything else is shown, not raised
            self.post_message(RecipeChecked(token, False, f"{type(exc).__name__}: {exc}", defaults))

    def _check_data(self, recipe: Any) -> None:
        """The dataset must be on disk (or downloadable), as ``idmm run`` checks before it starts."""
        from idmm_tui.data.registry import load_configured
        from idmm_tui.stages import plan_stages

        data = recipe.data
        splits = ("train", "test") if any(s.kind == "finetune" for s in plan_stages(recipe)) else ("train",)
        key = (data.dataset, data.root, data.download, tuple(data.classes), splits)
        if key not in self._data_checked:
            error = ""
            if not data.download:  # a download happens in the run itself, not while typing
                try:
                    for split in splits:
                        load_configured(data, split)
                except IdmmError as exc:
                    error = str(exc)
            self._data_checked[key] = error
        if self._data_checked[key]:
            raise IdmmError(self._data_checked[key])

    # -- form state ------------------------------------------------------------------------------

    def form_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field in SELECTS:
            value = self.query_one(f"#{field}", Select).value
            values[field] = None if value is Select.NULL else value
        for field in INPUTS:
            values[field] = self.query_one(f"#{field}", Input).value.strip()
        return values

    def schedule_check(self, delay: float = 0.3) -> None:
        self.token += 1
        self._set_launchable(False)
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(delay, self._start_check) if delay else None
        if not delay:
            self._start_check()

    def _start_check(self) -> None:
        recipe = self.query_one("#recipe", Select).value
        if recipe is Select.NULL:
            self._show_status(False, f"no recipes in {self.dashboard.recipes_dir}: put a .toml recipe there")
            return
        first = self.result is None
        self.query_one("#launch-status", Static).update(
            Text(
                "checking… (the first check loads torch and the dataset: a few seconds)" if first else "checking…",
                style="dim",
            )
        )
        self.check(
            self.token,
            str(recipe),
            self.form_values(),
            self.query_one("#extra", Input).value,
            self.query_one("#name", Input).value.strip(),
        )

    def on_registries_loaded(self, message: RegistriesLoaded) -> None:
        self.registries = message
        if message.error:
            self._show_status(False, message.error)
            return
        for field, names in (
            ("backbone", message.backbones),
            ("dataset", message.datasets),
            ("method", message.methods),
        ):
            select = self.query_one(f"#{field}", Select)
            select.set_options([(n, n) for n in names])
            select.prompt = "(recipe's)"
        self._apply_defaults()

    def on_recipe_checked(self, message: RecipeChecked) -> None:
        if message.token != self.token:
            return  # a stale answer: the form changed since
        if message.defaults:
            self.defaults = message.defaults
            self._apply_defaults()
        self.result = message
        self._show_status(message.ok, message.message, message.plan)

    def _apply_defaults(self) -> None:
        """Show the recipe's values: selects left blank take them, inputs show them as placeholders."""
        if not self.defaults:
            return
        if self.registries is not None and not self.registries.error:
            for field in SELECTS:
                select = self.query_one(f"#{field}", Select)
                default = self.defaults.get(field)
                if select.value is Select.NULL and default is not None:
                    try:
                        with select.prevent(Select.Changed):
                            select.value = default
                    except Exception:  # a recipe naming an unknown entry: the check says why
                        pass
        for field in INPUTS:
            default = self.defaults.get(field)
            shown = "the dataset's default location" if field == "root" and not default else f"{default} (recipe)"
            self.query_one(f"#{field}", Input).placeholder = shown
        name = self.defaults.get("name") or Path(str(self.query_one("#recipe", Select).value)).stem
        self.query_one("#name", Input).placeholder = f"default: {name}-<date>-<time>"

    def _set_launchable(self, ok: bool) -> None:
        self.query_one("#launch", Button).disabled = not ok

    def _show_status(self, ok: bool, message: str, plan: str = "") -> None:
        status = self.query_one("#launch-status", Static)
        for row in self.query(".form-row"):
            row.remove_class("-invalid")
        if ok:
            status.update(Text.assemble(("✓ ready: ", "bold green"), (plan, "")))
        else:
            status.update(Text.assemble(("✗ ", "bold red"), (message, "red")))
            try:
                extra_keys = [item.partition("=")[0] for item in shlex.split(self.query_one("#extra", Input).value)]
            except ValueError:
                extra_keys = []
            for field in blamed_fields(message, extra_keys):
                self.query_one(f"#row-{field}").add_class("-invalid")
        command = self.command_line()
        self.query_one("#launch-command", Static).update(Text(f"$ {command}", style="dim") if command else "")
        self._set_launchable(ok)

    def command_line(self) -> str:
        result = self.result
        recipe = self.query_one("#recipe", Select).value
        if recipe is Select.NULL:
            return ""
        parts = ["idmm", "run", _short(Path(str(recipe)))]
        name = self.query_one("#name", Input).value.strip()
        if name:
            parts += ["--name", name]
        for item in result.overrides if result is not None and result.ok else []:
            parts += ["--set", item]
        parts += ["--runs-dir", str(self.dashboard.runs_dir)]
        return " ".join(shlex.quote(p) for p in parts)

    # -- events ----------------------------------------------------------------------------------

    @on(Select.Changed, "#recipe")
    def _recipe_changed(self) -> None:
        for field in SELECTS:
            select = self.query_one(f"#{field}", Select)
            with select.prevent(Select.Changed):
                select.clear()
        for field in INPUTS:
            self.query_one(f"#{field}", Input).value = ""
        self.defaults = {}
        self.schedule_check(0.0)

    @on(Select.Changed, "#backbone, #dataset, #method")
    @on(Input.Changed)
    def _field_changed(self) -> None:
        self.schedule_check()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.focus_next()

    @on(Button.Pressed, "#launch")
    def _launch_pressed(self) -> None:
        self.action_launch()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        self.app.pop_screen()

    def action_launch(self) -> None:
        result = self.result
        if result is None or result.token != self.token:
            self.notify("Still checking the form…", severity="warning")
            return
        if not result.ok:
            self.notify(result.message, title="Cannot launch", severity="error")
            return
        from idmm_tui.launch import default_run_name

        recipe_path = Path(str(self.query_one("#recipe", Select).value))
        name = self.query_one("#name", Input).value.strip() or default_run_name(
            result.recipe, recipe_path, self.dashboard.runs_dir
        )
        self.post_message(LaunchRequested(recipe_path, name, list(result.overrides)))


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
