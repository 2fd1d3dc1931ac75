"""A griffe extension for the documentation site (mkdocs.yml loads it): the Sphinx
cross-reference roles the docstrings use (``:class:`~l3l4.Config```, ``:meth:`send```)
become links to the API reference, as Sphinx would render them.

A name is resolved in the docstring's own scope (its object, then the enclosing class
and module), like Sphinx does; a reference to something the site does not document
stays plain code, without a warning.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, GriffeLoader, NameResolutionError, Object

ROLE = re.compile(r":(?P<role>class|meth|func|data|attr|mod|exc):`(?P<short>~?)(?P<target>[\w.]+)`")
_CALLABLE = {"meth", "func"}


def resolve(obj: Object, target: str) -> str:
    """The full path of ``target`` as seen from ``obj``'s docstring (``target`` itself
    when it cannot be resolved)."""
    head, dot, rest = target.partition(".")
    try:
        return obj.resolve(head) + dot + rest
    except NameResolutionError:
        return target


def link(obj: Object, match: re.Match[str]) -> str:
    """The autorefs reference for one role: a link when the target is documented."""
    target = match["target"]
    title = target.rsplit(".", 1)[-1] if match["short"] else target
    if match["role"] in _CALLABLE:
        title += "()"
    return f'<autoref identifier="{resolve(obj, target)}" optional><code>{title}</code></autoref>'


class SphinxRoles(Extension):
    """Rewrites every docstring's Sphinx roles once the object tree is complete."""

    def on_object(self, *, obj: Object, loader: GriffeLoader, **kwargs: Any) -> None:
        """Rewrite ``obj``'s docstring, if it has one."""
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(lambda match: link(obj, match), obj.docstring.value)
