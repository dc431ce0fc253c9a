"""Sphinx configuration of the isaaclab_pbt documentation (built with -W: warnings are errors)."""

import os
import sys

import tomllib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

with open(os.path.join(ROOT, "extension.toml"), "rb") as f:
    _package = tomllib.load(f)["package"]

project = "Isaac Lab PBT"
author = "The isaaclab_pbt developers"
copyright = "2026, the isaaclab_pbt developers"
version = release = _package["version"]

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax shipped with the docs: formulas render without a CDN
    "sphinx.ext.viewcode",
    "pbtcfg_reference",
]

# Isaac Lab and Isaac Sim cannot be installed beside the docs build; only they are mocked
autodoc_mock_imports = ["isaaclab", "isaaclab_tasks", "isaaclab_rl", "isaacsim", "pxr", "ray"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
nitpicky = False

html_theme = "sphinx_book_theme"
html_title = "Isaac Lab PBT"
html_static_path = ["_static"]
html_theme_options = {
    "repository_url": _package["repository"],
    "use_repository_button": True,
    "show_toc_level": 2,
}
exclude_patterns = ["_build"]
