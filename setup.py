"""Installation script for the ``isaaclab_pbt`` extension.

Version and metadata come from ``extension.toml`` so that Isaac Lab's extension tooling and pip
read the same numbers. Install it editable (``pip install -e .``) as Isaac Lab does for its own
extensions, or as a wheel: the shipped agent configs are package data (``isaaclab_pbt/agents``).
"""

from pathlib import Path

import tomllib
from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
EXTENSION = tomllib.loads((ROOT / "extension.toml").read_text())["package"]

INSTALL_REQUIRES = [
    # torch is not listed on purpose: install the build that fits the machine first
    # (CPU, CUDA, or the one bundled with Isaac Lab) so pip never swaps it.
    "rl-games==1.6.5",
    "pyyaml>=6.0",
    "omegaconf>=2.3",
    "hydra-core>=1.3,<1.4",  # its override parser is the grammar of agent.* and env.* tokens (an Isaac Lab dependency too)
    "rich>=13.0",
    "matplotlib>=3.7",
    "numpy",
]

DOCS_REQUIRE = ["sphinx>=7", "sphinx-book-theme>=1.1", "sphinx-mathjax-offline"]
EXTRAS_REQUIRE = {
    "ray": ["ray[default]>=2.40"],
    "wandb": ["wandb"],
    "docs": DOCS_REQUIRE,
    # plain ray (no dashboard): the tests start a local instance only
    "rsl_rl": ["rsl-rl-lib>=5.0,<6"],
    "skrl": ["skrl>=2.0,<3"],
    "test": ["pytest>=7.0", "pytest-timeout", "ray>=2.40", "wandb", "rsl-rl-lib>=5.0,<6", "skrl>=2.0,<3", "ruff", *DOCS_REQUIRE],
}

setup(
    name="isaaclab_pbt",
    version=EXTENSION["version"],
    description=EXTENSION["description"],
    long_description=(ROOT / EXTENSION["readme"]).read_text(),
    long_description_content_type="text/markdown",
    url=EXTENSION["repository"],
    keywords=EXTENSION["keywords"],
    license="BSD-3-Clause",
    python_requires=">=3.11",
    packages=find_packages(include=["isaaclab_pbt", "isaaclab_pbt.*"]),
    package_data={"isaaclab_pbt": ["agents/*.yaml"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": ["isaaclab-pbt = isaaclab_pbt.cli:main"],
        # Isaac Lab 3 imports this module to find extra tasks: it adds our agent configs to Dexsuite's
        "isaaclab.tasks": ["isaaclab_pbt = isaaclab_pbt.isaaclab.registration"],
    },
    classifiers=[
        "Natural Language :: English",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Isaac Sim :: 5.1.0",
    ],
    zip_safe=False,
)
