"""`make plugin` (tools/build_plugin.py): an installable zip of the WordPress plugin, the same bytes every time,
whose PHP files all pass `php -l`."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "connectors" / "woocommerce" / "wordpress" / "encore"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_plugin", ROOT / "tools" / "build_plugin.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(output: Path) -> Path:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "build_plugin.py"), "--output", str(output)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == str(output)
    return output


def test_the_zip_installs_as_the_encore_folder_with_a_plugin_header(tmp_path: Path) -> None:
    built = _build(tmp_path / "encore-for-woocommerce.zip")
    with zipfile.ZipFile(built) as archive:
        names = archive.namelist()
        assert {"encore/encore.php", "encore/readme.txt", "encore/uninstall.php"} <= set(names)
        assert all(name.startswith("encore/") for name in names)
        main = archive.read("encore/encore.php").decode()
        readme = archive.read("encore/readme.txt").decode()
    assert main == (SOURCE / "encore.php").read_text()
    header = _tool().plugin_header(main)
    assert header["Plugin Name"] == "Encore"
    assert (header["Requires PHP"], header["Text Domain"], header["License"]) == ("7.4", "encore", "GPL-2.0-or-later")
    assert readme.startswith("=== Encore ===") and "Requires PHP: 7.4" in readme
    assert f"Stable tag: {header['Version']}" in readme

    again = _build(tmp_path / "again.zip")
    assert again.read_bytes() == built.read_bytes()  # no clock, no file order in the bytes


def test_every_php_file_of_the_zip_passes_php_lint(tmp_path: Path) -> None:
    php = shutil.which("php")
    if php is None:
        pytest.skip("php is absent: install php-cli (make system-deps) to lint the WordPress plugin")
    with zipfile.ZipFile(_build(tmp_path / "plugin.zip")) as archive:
        archive.extractall(tmp_path / "unpacked")
    files = sorted((tmp_path / "unpacked" / "encore").rglob("*.php"))
    assert len(files) >= 2
    for path in files:
        lint = subprocess.run([php, "-l", str(path)], capture_output=True, text=True, timeout=60)
        assert lint.returncode == 0, lint.stdout + lint.stderr
