"""The documentation builds warning-free, its links resolve, and its configs and commands really work."""

import re
import shlex
import subprocess
import sys
from html.parser import HTMLParser

import pytest
import yaml

from isaaclab_pbt.cli import build_parser as cli_parser
from isaaclab_pbt.core.agent_config import is_override
from isaaclab_pbt.core.config import PbtCfg
from isaaclab_pbt.core.errors import UsageError
from isaaclab_pbt.launch import build_parser as launch_parser
from isaaclab_pbt.rl_games.train import build_parser as train_parser
from isaaclab_pbt.rsl_rl.train import build_parser as rsl_rl_parser
from isaaclab_pbt.skrl.train import build_parser as skrl_parser

from .conftest import ROOT

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.rst"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


def test_build_is_warning_free_and_has_every_page(built):
    for page in PAGES:
        assert (built / f"{page.stem}.html").exists(), page.name
    reference = (built / "configuration.html").read_text()
    for field in ("policy_idx", "change_range", "burn_in_steps", "member_timeout_s"):
        assert f">{field}</span></code>" in reference  # the reference generated from PbtCfg
    assert (built / "_images" / "population.png").exists()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for name in ("href", "src"):
            if attrs.get(name):
                self.links.append(attrs[name])


def test_internal_links_and_anchors_resolve(built):
    pages = {}
    for html in built.rglob("*.html"):
        if html.name.endswith("webpack-macros.html"):  # templates the theme copies verbatim, not pages
            continue
        parser = _Links()
        parser.feed(html.read_text(errors="replace"))
        pages[html] = parser
    broken = []
    for html, parser in pages.items():
        for link in parser.links:
            if re.match(r"^(https?:|mailto:|javascript:|data:|//)", link):
                continue
            target, _, anchor = link.partition("#")
            target = target.split("?", 1)[0]  # cache-busting query strings of the theme's assets
            path = (html.parent / target).resolve() if target else html
            if not path.exists():
                broken.append(f"{html.name}: {link}")
            elif anchor and path.suffix == ".html" and path in pages and anchor not in pages[path].ids:
                broken.append(f"{html.name}: {link} (no such anchor)")
    assert not broken, broken


def _blocks(language):
    """(page, text) of every ``.. code-block:: <language>`` in the docs sources."""
    for page in PAGES:
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() == f".. code-block:: {language}":
                indent, body = None, []
                for text in lines[i + 1:]:
                    if text.strip() and indent is None:
                        indent = len(text) - len(text.lstrip())
                    if text.strip() and indent is not None and len(text) - len(text.lstrip()) < indent:
                        break
                    body.append(text[indent:] if indent else text)
                yield page.name, "\n".join(body)


def test_every_yaml_block_is_valid_and_pbt_blocks_are_accepted():
    checked = 0
    for page, text in _blocks("yaml"):
        data = yaml.safe_load(text)  # raises on a block that is not YAML
        if isinstance(data, dict) and "pbt" in data:
            cfg = PbtCfg.from_dict(data["pbt"])  # raises with the field's name if the docs show a bad value
            assert cfg.enabled, page
            checked += 1
    assert checked >= 1


def _commands():
    for page, text in _blocks("bash"):
        for line in text.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("#") or not re.search(r"scripts/((rsl_rl/|skrl/)?train|launch_pbt)\.py|-m isaaclab_pbt", line):
                continue
            line = re.sub(r"<[^>]+>", "1", line).split(" > ")[0].removesuffix("&")  # a member started in the background
            line = re.sub(r"\$\w+", "1", line)  # a shell loop's variable, e.g. --seed=$n
            yield page, shlex.split(line)


#: library -> (its train script, the parser of its flags)
TRAIN = {"rl_games": ("scripts/train.py", train_parser), "rsl_rl": ("scripts/rsl_rl/train.py", rsl_rl_parser),
         "skrl": ("scripts/skrl/train.py", skrl_parser)}


def _check_train_args(args, library="rl_games"):
    parsed, rest = TRAIN[library][1]().parse_known_args(args)
    assert all(is_override(t) for t in rest), rest


def test_every_command_shown_uses_flags_the_scripts_accept():
    commands = list(_commands())
    assert len(commands) >= 8
    for page, tokens in commands:
        try:
            script = next((lib for lib, (path, _) in TRAIN.items() if any(t.endswith(path) for t in tokens)), None)
            if script is not None:
                _check_train_args(tokens[[t.endswith(TRAIN[script][0]) for t in tokens].index(True) + 1:], script)
            elif any(t.endswith("scripts/launch_pbt.py") for t in tokens):
                rest = tokens[[t.endswith("scripts/launch_pbt.py") for t in tokens].index(True) + 1:]
                own, train = (rest[:rest.index("--")], rest[rest.index("--") + 1:]) if "--" in rest else (rest, [])
                _check_train_args(train, launch_parser().parse_args(own).library)
            else:
                cli_parser().parse_args(tokens[tokens.index("isaaclab_pbt") + 1:])
        except (SystemExit, UsageError) as e:
            raise AssertionError(f"{page}: {' '.join(tokens)}") from e
