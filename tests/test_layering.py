"""The import rules of the layout: engine/ never imports torch, rclpy, offline_train, export or nodes; etc."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "engine": {"torch", "rclpy", "offline_train", "export", "nodes", "vsgg_msgs", "vsgg_nodes"},
    "offline_train": {"rclpy", "export", "nodes", "vsgg_nodes"},
    "export": {"rclpy", "nodes", "vsgg_nodes"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            roots.add(str(node.args[0].value).split(".")[0])  # importlib tricks count as imports too
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_direction(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no python files"
    bad = []
    for f in files:
        hit = imported_roots(f) & FORBIDDEN[package]
        if hit:
            bad.append(f"{f.relative_to(ROOT)} imports {sorted(hit)}")
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_checker_catches_a_violation(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import os\nfrom torch import nn\nimport importlib\nimportlib.import_module('rclpy.node')\n")
    assert {"torch", "rclpy"} <= imported_roots(f)
