"""Read published DARTS genotype text without evaluating it.

Genotypes are published as Python source, e.g.
`DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)`
or with `normal_concat=range(2, 6)`. This walks the syntax tree and accepts only
literals, lists/tuples of them, and `range(...)` with integer arguments: untrusted text
can never run code here.
"""

from __future__ import annotations

import ast
from typing import Any

from repair_core.errors import RepairInputError

FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
MAX_TEXT = 20_000  # characters; published genotypes are under 1,000
MAX_RANGE = 64  # elements a range(...) may expand to


def parse_genotype_notation(text: str) -> dict[str, Any]:
    """Return the four genotype fields as plain lists; validation is the caller's."""
    if len(text) > MAX_TEXT:
        raise RepairInputError(f"genotype text is {len(text)} characters; at most {MAX_TEXT}")
    call = _genotype_call(text.strip())
    if len(call.args) > len(FIELDS):
        raise RepairInputError(f"Genotype(...) takes at most {len(FIELDS)} arguments")
    fields: dict[str, Any] = {}
    for name, arg in zip(FIELDS, call.args, strict=False):
        fields[name] = _literal(arg)
    for kw in call.keywords:
        if kw.arg not in FIELDS:
            raise RepairInputError(
                f"Genotype(...) has no field {kw.arg!r}; fields are {list(FIELDS)}"
            )
        if kw.arg in fields:
            raise RepairInputError(f"Genotype(...) field {kw.arg!r} given twice")
        fields[kw.arg] = _literal(kw.value)
    return fields


def _genotype_call(text: str) -> ast.Call:
    try:
        module = ast.parse(text, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise RepairInputError(f"genotype text is not valid DARTS notation: {exc}") from None
    if len(module.body) != 1:
        raise RepairInputError("genotype text must hold exactly one Genotype(...) expression")
    stmt = module.body[0]
    if isinstance(stmt, ast.Assign):  # `DARTS_V2 = Genotype(...)`
        node: ast.expr = stmt.value
    elif isinstance(stmt, ast.Expr):
        node = stmt.value
    else:
        raise RepairInputError("genotype text must be `Genotype(...)` or `NAME = Genotype(...)`")
    func = node.func if isinstance(node, ast.Call) else None
    name = (
        func.id
        if isinstance(func, ast.Name)
        else func.attr
        if isinstance(func, ast.Attribute)
        else None
    )
    if not isinstance(node, ast.Call) or name != "Genotype":
        raise RepairInputError("genotype text must be a call `Genotype(normal=[...], ...)`")
    return node


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _literal(node.operand)
        if isinstance(value, int):
            return -value
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(e) for e in node.elts]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
        and 1 <= len(node.args) <= 3
    ):
        bounds = [_literal(a) for a in node.args]
        integers = all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
        if integers and (len(bounds) < 3 or bounds[2] != 0):  # range() rejects step 0
            values = range(*bounds)
            if len(values) <= MAX_RANGE:
                return list(values)
    raise RepairInputError(
        f"unsupported expression in genotype text at line {node.lineno}, column "
        f"{node.col_offset}: only strings, integers, lists, tuples and range(...) are read"
    )
