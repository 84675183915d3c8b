"""MkDocs hook: the config reference in docs/config.md, generated from the pydantic schema in zoo/config.py.

docs/config.md holds the marker below; at build time it is replaced by one table per section (model, data,
data.augment, optimizer, scheduler, init, loss, train, train.early_stopping, train.ema, finetune), each row read
from the schema: the key path, the type (a Literal's choices listed), the default, the constraints (pydantic's
gt/ge/lt/le metadata) and the meaning, which is the `# ...` comment on the field's line in zoo/config.py (or the
comment lines right above the field). A section's class docstring opens its table. So the reference is whatever
the code says on the day the site is built, and cannot drift from it.

zoo.config imports no torch, so the hook is quick: `python -c "import sys, zoo.config; print('torch' in sys.modules)"`.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import sys
import tokenize
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

_UNIONS = (Union, types.UnionType)  # typing.Union[...] and X | Y
MARKER = "<!-- config reference: generated from zoo.config -->"
ROOT = Path(__file__).resolve().parents[1]


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference())


def reference() -> str:
    """Every section's table, in the schema's order, as Markdown."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the checkout's zoo, installed or not
    from pydantic import BaseModel

    from zoo.config import Config

    blocks: list[str] = []
    comments = _comments(Config)
    for name, field in Config.model_fields.items():
        section = _section_of(field, BaseModel)
        if section is not None:
            blocks += _tables(name, section, field, BaseModel, comments.get(name, ""))
        else:  # a top-level key (init): a table of one row
            blocks.append(_table(name, None, [_row(name, field, comments.get(name, ""), BaseModel)]))
    return "\n\n".join(blocks)


# ---- the schema walked --------------------------------------------------------------------------

def _tables(path: str, section: type, field: Any, base: type, comment: str = "") -> list[str]:
    """The table of the section at `path`, then the tables of the sections inside it (data.augment ...). `comment`:
    the comment on the field that holds a top-level section (finetune's); a nested one's is in its row."""
    comments = _comments(section)
    rows, inner = [], []
    for name, child in section.model_fields.items():
        key = f"{path}.{name}"
        rows.append(_row(key, child, comments.get(name, ""), base))
        nested = _section_of(child, base)
        if nested is not None:
            inner += _tables(key, nested, child, base)
    intro = _docstring(section)
    if getattr(section, "model_config", {}).get("extra") == "allow":
        intro = (intro + " " if intro else "") + "Keys not listed here are accepted and passed on."
    if field.is_required():
        note = f"The `{path}` section is required."
    elif field.default is None:
        note = f"The `{path}` section is optional (default `null`)" + (f": {comment}." if comment else ".")
    else:
        note = ""
    return [_table(path, " ".join(part for part in (intro, note) if part), rows), *inner]


def _table(path: str, intro: str | None, rows: list[str]) -> str:
    heading = f"### `{path}` {{#{_anchor(path)}}}"
    lines = [heading, ""]
    if intro:
        lines += [_escape(intro), ""]
    lines += ["| key | type | default | constraints | meaning |", "|---|---|---|---|---|", *rows]
    return "\n".join(lines)


def _row(key: str, field: Any, comment: str, base: type) -> str:
    nested = _section_of(field, base)
    meaning = comment or (_docstring(nested).split(". ")[0].rstrip(".") if nested is not None else "")
    meaning = _escape(meaning)
    if nested is not None:
        meaning = (meaning + "; " if meaning else "") + f"see [`{key}`](#{_anchor(key)})"
    cells = [f"`{key}`", _type(field.annotation, base), _default(field), _constraints(field), meaning]
    return "| " + " | ".join(cells) + " |"


def _section_of(field: Any, base: type) -> type | None:
    """The pydantic section class a field holds (alone, or as one form of a union), or None."""
    for kind in _members(field.annotation):
        if isinstance(kind, type) and issubclass(kind, base):
            return kind
    return None


def _members(annotation: Any) -> list[Any]:
    """The types of a union, Annotated unwrapped: `Annotated[bool, Tag] | Annotated[X, Tag]` -> [bool, X]."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in _UNIONS:
        found: list[Any] = []
        for member in get_args(annotation):
            found += _members(member)
        return found
    return [annotation]


def _type(annotation: Any, base: type) -> str:
    """The type as a reader writes it: a Literal's choices, `section`, `list of int`, `null` where None is allowed."""
    names: list[str] = []
    for kind in _members(annotation):
        for name in _type_names(kind, base):
            if name not in names:
                names.append(name)
    return " \\| ".join(name if name == "section" else f"`{name}`" for name in names)


def _type_names(kind: Any, base: type) -> list[str]:
    if kind is type(None):
        return ["null"]
    if get_origin(kind) is Literal:
        return [str(choice) for choice in get_args(kind)]
    if isinstance(kind, type) and issubclass(kind, base):
        return ["section"]
    if get_origin(kind) is tuple:
        args = get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return [f"list of {_type_names(args[0], base)[0]}"]
        return ["[" + ", ".join(_type_names(arg, base)[0] for arg in args) + "]"]
    if kind is Path:
        return ["path"]
    return [getattr(kind, "__name__", str(kind))]


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if hasattr(value, "model_dump"):
        return "its keys' defaults"
    return f"`{_yaml(value)}`"


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_yaml(item) for item in value) + "]"
    return str(value)


_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _constraints(field: Any) -> str:
    """gt/ge/lt/le from the field's metadata and from an Annotated member of its union (train.threads)."""
    metadata = list(field.metadata)
    annotation = field.annotation
    for member in get_args(annotation) if get_origin(annotation) in _UNIONS else ():
        if get_origin(member) is Annotated:
            for extra in get_args(member)[1:]:
                metadata += list(getattr(extra, "metadata", [extra]))
    parts = []
    for item in metadata:
        for attribute, sign in _BOUNDS:
            bound = getattr(item, attribute, None)
            if bound is not None:
                parts.append(f"{sign} {bound}")
    return ", ".join(parts)


# ---- the source read ----------------------------------------------------------------------------

def _comments(section: type) -> dict[str, str]:
    """Each field's comment in the class source: the one on its line(s), else the comment lines right above it."""
    source = inspect.getsource(section)
    by_line: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            by_line[token.start[0]] = token.string.lstrip("#").strip()
    lines = source.splitlines()
    found: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        trailing = [by_line[n] for n in range(node.lineno, node.end_lineno + 1) if n in by_line]
        above, n = [], node.lineno - 1
        while n >= 1 and n in by_line and lines[n - 1].lstrip().startswith("#"):
            above.insert(0, by_line[n])
            n -= 1
        found[node.target.id] = " ".join(trailing or above)
    return found


def _docstring(section: type | None) -> str:
    doc = inspect.getdoc(section) if section is not None and section.__doc__ else ""
    return " ".join((doc or "").split())


# ---- Markdown -----------------------------------------------------------------------------------

def _anchor(path: str) -> str:
    return "config-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def _escape(text: str) -> str:
    """Plain text for a table cell: Markdown's characters escaped outside `code spans`, which are kept."""
    parts = re.split(r"(`[^`]*`)", text)
    for index, part in enumerate(parts):
        if index % 2 == 0:
            part = part.replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            part = re.sub(r"([*_\[\]|])", r"\\\1", part)
        else:
            part = part.replace("|", "\\|")
        parts[index] = part
    return "".join(parts)
