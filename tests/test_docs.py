"""The user guide runs: every ```python block of docs/*.md, in order, one namespace per page."""

import pathlib
import re

import jax
import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_every_page_is_linked_from_the_index():
    index = (DOCS / "README.md").read_text()
    assert {p.name for p in PAGES if p.name != "README.md"} <= set(re.findall(r"\(([\w-]+\.md)\)", index))


@pytest.mark.parametrize("page", [p for p in PAGES if BLOCK.search(p.read_text())], ids=lambda p: p.stem)
def test_page_runs(page, capsys):
    x64 = jax.config.jax_enable_x64
    ns = {"__name__": f"docs_{page.stem}"}
    try:
        for k, block in enumerate(BLOCK.findall(page.read_text())):
            exec(compile(block, f"{page.name}[block {k}]", "exec"), ns)  # noqa: S102
    finally:
        jax.config.update("jax_enable_x64", x64)
    assert capsys.readouterr().out  # the pages print what they show
