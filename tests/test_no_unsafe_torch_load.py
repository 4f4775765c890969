"""Repository lint: no unpickling of untrusted bytes (TorchFix TOR102 and friends).

Every `torch.load` must pass `weights_only=True` literally; `weights_only=False`,
`pickle.load(s)` and `allow_pickle=True` appear nowhere. Checked on the syntax tree, so
strings and comments (like this one) do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", ".venv", "venv", "var", "build", "node_modules", ".mypy_cache", ".ruff_cache"}


def _python_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if not SKIP_DIRS & set(p.relative_to(ROOT).parts))


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _call_violation(node: ast.Call) -> str | None:
    name = _dotted(node.func)
    keywords = {kw.arg: kw.value for kw in node.keywords if kw.arg}

    def literal(key: str) -> object:
        value = keywords.get(key)
        return value.value if isinstance(value, ast.Constant) else None

    if name in ("torch.load", "torch.serialization.load") and literal("weights_only") is not True:
        return f"{name} without weights_only=True"
    if literal("weights_only") is False:
        return f"{name}(weights_only=False)"
    if literal("allow_pickle") is True:
        return f"{name}(allow_pickle=True)"
    if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "dill.loads"):
        return name
    return None


def _violations(tree: ast.AST) -> list[str]:
    return [
        f"line {node.lineno}: {problem}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and (problem := _call_violation(node))
    ]


def test_the_checker_catches_what_it_should() -> None:
    bad = ast.parse(
        "torch.load(f)\ntorch.load(f, weights_only=False)\nnp.load(f, allow_pickle=True)\n"
        "pickle.loads(b)\ntorch.serialization.load(f, weights_only=flag)\n"
    )
    assert len(_violations(bad)) == 5
    good = ast.parse("torch.load(f, map_location='cpu', weights_only=True)\nnp.load(f)\n")
    assert _violations(good) == []


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_unsafe_deserialisation(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert _violations(tree) == [], path
