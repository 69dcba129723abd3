"""A Sphinx directive whose content is reStructuredText generated from the code while the site builds."""

from __future__ import annotations

from collections.abc import Iterator

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


class GeneratedRst(SphinxDirective):
    """Parses :meth:`lines` in place of the directive; sections in them become sections of the page."""

    def lines(self) -> Iterator[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        content = StringList(list(self.lines()), source=self.get_source_info()[0])
        container = nodes.section()  # holds the parsed nodes until they replace the directive
        nested_parse_with_titles(self.state, content, container)
        return container.children
