"""The layering of docs/architecture.md, checked on the source: imports go downward only.

Every import of every module is read from its syntax tree (function-level imports included), so
a lazy import cannot hide a dependency.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from rcm_assets.settings import REPO_ROOT

PACKAGE = REPO_ROOT / "rcm_assets"
LAYERS = ("bronze", "silver", "gold")
# What may not be imported, by where the importing module lives.
FORBIDDEN = {
    "lake": (
        "dagster",
        "rcm_assets.resources",
        "rcm_assets.defs",
        *(f"rcm_assets.{x}" for x in LAYERS),
    ),
    "x12": (
        "dagster",
        "rcm_assets.lake",
        "rcm_assets.resources",
        "rcm_assets.defs",
        *(f"rcm_assets.{x}" for x in LAYERS),
    ),
    "quality": ("dagster", "rcm_assets.lake", "rcm_assets.resources", "rcm_assets.defs"),
    "metadata": ("dagster", "rcm_assets.lake", "rcm_assets.resources", "rcm_assets.quality"),
    "resources": (
        "rcm_assets.defs",
        "rcm_assets.sample_data",
        *(f"rcm_assets.{x}" for x in LAYERS),
    ),
    "bronze": ("rcm_assets.defs", "rcm_assets.sample_data", "rcm_assets.silver", "rcm_assets.gold"),
    "silver": ("rcm_assets.defs", "rcm_assets.sample_data", "rcm_assets.bronze", "rcm_assets.gold"),
    "gold": ("rcm_assets.defs", "rcm_assets.sample_data", "rcm_assets.bronze", "rcm_assets.silver"),
}


def module_name(path: Path) -> str:
    if not path.is_relative_to(REPO_ROOT):  # a probe file of the tests themselves
        return path.stem
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of everything the module imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_source_tree_is_read() -> None:
    folders = {path.relative_to(PACKAGE).parts[0] for path in MODULES}
    assert set(FORBIDDEN) <= folders  # a renamed folder must not switch its checks off


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_go_downward(folder: str) -> None:
    breaches = [
        f"{module_name(path)} imports {name}"
        for path in MODULES
        if path.relative_to(PACKAGE).parts[0] == folder
        for name in sorted(imports_of(path))
        if any(matches(name, prefix) for prefix in FORBIDDEN[folder])
    ]
    assert not breaches, "\n".join(breaches)


def test_only_the_code_location_loads_the_defs_folder() -> None:
    importers = sorted(
        module_name(path)
        for path in MODULES
        if not module_name(path).startswith("rcm_assets.defs")
        and any(matches(name, "rcm_assets.defs") for name in imports_of(path))
    )
    assert importers == []


def test_the_checker_sees_a_breach(tmp_path: Path) -> None:
    module = PACKAGE / "lake" / "delta.py"
    assert "dagster" not in {n.split(".")[0] for n in imports_of(module)}
    fake = tmp_path / "x.py"
    fake.write_text("def f():\n    from dagster import asset\n")
    assert "dagster.asset" in imports_of(fake)


def test_loading_the_definitions_imports_no_demo_code() -> None:
    """What a code-location load (UI, daemon, every run worker) imports, in a fresh process."""
    script = (
        "import sys\n"
        "from rcm_assets.definitions import defs\n"
        "defs().resolve_asset_graph()\n"
        "roots = ('faker', 'numpy', 'pandas')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in roots\n"
        "             or m.startswith('rcm_assets.sample_data')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert result.stdout.strip() == "[]"


def test_no_module_but_the_address_layer_derives_table_paths() -> None:
    """Table URIs come from `lake.addresses.LakeAddresses`; the old helpers must not return."""
    helpers = ("table_uri(", "bronze_uri(", "silver_uri(", "gold_uri(", "audit_uri(", "dq_uri(")
    offenders = [
        f"{path.relative_to(REPO_ROOT)}: {helper}"
        for path in MODULES
        for helper in helpers
        if helper in path.read_text()
    ]
    assert not offenders, offenders
