"""``.. pbtcfg-reference::``: the configuration reference, generated from ``PbtCfg`` itself.

One entry per dataclass field: name, type, default and the one-line docstring written below the
field, so the reference can never drift from the code.
"""

import ast
import dataclasses
import inspect

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList


def field_docs(cls) -> dict:
    """Field name -> the string literal that follows it in the class body."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for stmt, nxt in zip(body, body[1:], strict=False):
        if isinstance(stmt, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[stmt.target.id] = " ".join(str(nxt.value.value).split())
    return docs


class PbtCfgReference(Directive):
    """A definition list: ``name : type = default`` and, below, the field's docstring as reStructuredText."""

    has_content = False

    def run(self):
        from isaaclab_pbt.core.config import PbtCfg

        docs = field_docs(PbtCfg)
        defaults = PbtCfg.defaults()
        lines = []
        for f in dataclasses.fields(PbtCfg):
            default = "{...} (the 8 keys of the example)" if f.name == "mutation" else repr(defaults[f.name])
            lines += [f"``{f.name}`` : ``{f.type}`` = ``{default}``", f"   {docs.get(f.name, '')}", ""]
        container = nodes.container(classes=["pbtcfg-reference"])
        self.state.nested_parse(StringList(lines, source="PbtCfg"), self.content_offset, container)
        return [container]


def setup(app):
    app.add_directive("pbtcfg-reference", PbtCfgReference)
    return {"version": "1.0", "parallel_read_safe": True}
