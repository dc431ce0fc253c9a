"""``.. pbtcfg-table::``: the configuration reference, generated from ``PbtCfg`` itself.

One row per dataclass field: name, type, default and the one-line docstring written below the field,
so the reference can never drift from the code.
"""

import ast
import dataclasses
import inspect

from docutils import nodes
from docutils.parsers.rst import Directive


def field_docs(cls) -> dict:
    """Field name -> the string literal that follows it in the class body."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for stmt, nxt in zip(body, body[1:]):
        if isinstance(stmt, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[stmt.target.id] = " ".join(str(nxt.value.value).split())
    return docs


class PbtCfgTable(Directive):
    has_content = False

    def run(self):
        from isaaclab_pbt.config import PbtCfg

        docs = field_docs(PbtCfg)
        defaults = PbtCfg.defaults()
        table = nodes.table(classes=["longtable"])
        group = nodes.tgroup(cols=4)
        table += group
        for width in (18, 18, 22, 42):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        body = nodes.tbody()
        group += body

        def row(cells, parent, literal=(True, True, True, False)):
            tr = nodes.row()
            for text, lit in zip(cells, literal):
                entry = nodes.entry()
                para = nodes.paragraph()
                para += nodes.literal(text=text) if lit else nodes.Text(text)
                entry += para
                tr += entry
            parent += tr

        row(["field", "type", "default", "meaning"], head, (False, False, False, False))
        for f in dataclasses.fields(PbtCfg):
            default = defaults[f.name]
            shown = "{...} (8 keys, see the example)" if f.name == "mutation" else repr(default)
            row([f.name, str(f.type), shown, docs.get(f.name, "")], body)
        return [table]


def setup(app):
    app.add_directive("pbtcfg-table", PbtCfgTable)
    return {"version": "1.0", "parallel_read_safe": True}
