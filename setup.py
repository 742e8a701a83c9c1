"""Build hook: the wheel carries the top-level ``recipes/`` and ``zoo/catalogue.toml`` as package data
(``idmm_tui/_shipped/``), so an installed idmm runs its recipes and knows its zoo outside the source
tree; in the repository they stay where they are (see idmm_tui/shipped.py). Everything else is in
pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"recipes": sorted((ROOT / "recipes").glob("*.toml")), "zoo": [ROOT / "zoo" / "catalogue.toml"]}


class BuildWithShippedFiles(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the checkout
        for folder, files in SHIPPED.items():
            dest = Path(self.build_lib) / "idmm_tui" / "_shipped" / folder
            dest.mkdir(parents=True, exist_ok=True)
            for src in files:
                self.copy_file(str(src), str(dest / src.name))


setup(cmdclass={"build_py": BuildWithShippedFiles})
