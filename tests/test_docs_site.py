"""The docs site's configuration: the API reference page and the mermaid diagram.

`make docs` builds the whole site with ``mkdocs --strict`` (CI runs it); these
checks are the fast part: design.md's ```mermaid block renders as a diagram
element with the site's Markdown extensions, and every module the API page
documents exists (mkdocstrings reads them from the sources).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _config():
    pytest.importorskip("pymdownx", reason="the docs extra is not installed")
    from mkdocs.utils.yaml import yaml_load

    return yaml_load((ROOT / "mkdocs.yml").read_text())


def _markdown(cfg):
    import markdown

    names, configs = [], {}
    for ext in cfg["markdown_extensions"]:
        if isinstance(ext, dict):
            (name, options), = ext.items()
            names.append(name)
            configs[name] = options or {}
        else:
            names.append(ext)
    return markdown.Markdown(extensions=names, extension_configs=configs)


def test_mermaid_block_renders_as_a_diagram():
    cfg = _config()
    html = _markdown(cfg).convert((ROOT / "docs" / "design.md").read_text())
    diagrams = re.findall(r'<div class="mermaid">(.*?)</div>', html, re.S)
    assert diagrams and diagrams[0].startswith("flowchart LR"), "mermaid block not converted"
    assert "language-mermaid" not in html  # not left as a code block
    scripts = cfg["extra_javascript"]
    assert any("mermaid" in s and s.endswith(".js") for s in scripts)
    assert (ROOT / "docs" / "js" / "mermaid-init.js").exists()


def test_api_page_is_in_the_nav_and_documents_existing_modules():
    cfg = _config()
    assert "api.md" in str(cfg["nav"])
    plugins = [p if isinstance(p, str) else next(iter(p)) for p in cfg["plugins"]]
    assert "mkdocstrings" in plugins
    modules = re.findall(r"^::: ([\w.]+)", (ROOT / "docs" / "api.md").read_text(), re.M)
    assert {"ref.config", "ref.codec", "ref.mac", "ref.chain", "ref.cli"} <= set(modules)
    for mod in modules:
        path = ROOT / mod.replace(".", "/")
        assert path.with_suffix(".py").exists() or (path / "__init__.py").exists(), mod
