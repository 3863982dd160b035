"""LaTeX escaping and the jinja2 environment of the report templates.

Templates use delimiters that do not clash with TeX braces and percent signs:
``((* block *))``, ``((( variable )))`` and ``((= comment =))``.
"""

import re
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).parent / "templates"
_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}
_SPECIAL_PATTERN = re.compile("|".join(map(re.escape, _SPECIAL)))


def escape(text) -> str:
    """``text`` as LaTeX source that prints it literally."""
    return _SPECIAL_PATTERN.sub(lambda match: _SPECIAL[match.group()], str(text))


def environment() -> jinja2.Environment:
    """The environment of the report templates, with the ``latex`` escape filter."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        block_start_string="((*", block_end_string="*))",
        variable_start_string="(((", variable_end_string=")))",
        comment_start_string="((=", comment_end_string="=))",
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, autoescape=False,
    )
    env.filters["latex"] = escape
    return env
