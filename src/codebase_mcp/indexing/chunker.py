"""Split a file into chunks along its syntax.

A chunk is a definition (function, method, class, ...) with the comments and decorators right above
it, or a run of the code between definitions (module-level code, or the parts of a large class that
are not methods). Chunks cover every non-blank line once and never overlap. A definition larger than
the budget is split: a container (class, impl, module) into its members, anything else by lines.
Files in languages without a grammar are chunked by lines, Markdown by headings.
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass

import tree_sitter as ts

from codebase_mcp.core.codenames import qualify

GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "kotlin": ("tree_sitter_kotlin", "language"),
    "swift": ("tree_sitter_swift", "language"),
    "scala": ("tree_sitter_scala", "language"),
    "lua": ("tree_sitter_lua", "language"),
    "bash": ("tree_sitter_bash", "language"),
}

_DEFINITION = re.compile(
    r"^(?:function|method|class|struct|interface|enum|trait|impl|mod|module|namespace|object|protocol|"
    r"record|constructor|type|union|singleton_method|abstract_class|type_alias|property|local_function)"
    r"_(?:definition|declaration|item|specifier|statement)$"
)
_DEFINITION_EXTRA = frozenset({"method", "singleton_method", "class", "module", "decorated_definition"})
_CONTAINER_WORDS = (
    "class",
    "struct",
    "interface",
    "impl",
    "trait",
    "mod",
    "module",
    "namespace",
    "object",
    "protocol",
    "record",
    "enum",
)
_ATTACHED = ("comment", "decorator", "attribute_item", "annotation", "attribute")
_NAME_TYPES = frozenset(
    {
        "identifier",
        "type_identifier",
        "constant",
        "simple_identifier",
        "name",
        "property_identifier",
        "field_identifier",
        "word",
        "qualified_identifier",
        "scoped_identifier",
        "scoped_type_identifier",
        "generic_type",
    }
)
# Namespaces only group definitions: their members are always chunks of their own (a class inside a C++
# namespace or a Ruby module is found by its name), whatever the namespace's size; functions in them stay
# functions.
_NAMESPACES = frozenset({"namespace_definition", "namespace_declaration", "internal_module", "mod_item", "module"})
_WRAPPERS = frozenset({"export_statement", "template_declaration", "ambient_declaration"})
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True)
class Chunk:
    start_line: int  # 1-based, inclusive
    end_line: int
    kind: str  # function, method, class, module, type, section, lines
    symbol: str | None
    content: str


@dataclass
class _Segment:
    start: int  # 0-based rows, inclusive
    end: int
    kind: str
    symbol: str | None


@functools.cache
def _parser(language: str) -> ts.Parser | None:
    spec = GRAMMARS.get(language)
    if spec is None:
        return None
    module = importlib.import_module(spec[0])
    return ts.Parser(ts.Language(getattr(module, spec[1])()))


def chunk_file(text: str, language: str, budget: int) -> list[Chunk]:
    """Chunks of one file's text. ``budget`` is the largest chunk in characters (a line longer than
    the budget still makes one chunk)."""
    # Split on "\n" only, as tree-sitter counts rows (str.splitlines also splits on \x0c, \u2028, ...).
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not any(line.strip() for line in lines):
        return []
    if language == "markdown":
        segments = _markdown_sections(lines)
    else:
        parser = _parser(language)
        if parser is None:
            segments = []
        else:
            tree = parser.parse(text.encode("utf-8", errors="replace"))
            segments = _syntax_segments(tree.root_node, budget)
    return _materialise(lines, segments, budget)


# --- syntax -------------------------------------------------------------------------------------------


def _is_definition(node: ts.Node) -> bool:
    return node.type in _DEFINITION_EXTRA or bool(_DEFINITION.match(node.type))


def _kind(node: ts.Node, inside: bool) -> str:
    t = node.type
    if t == "decorated_definition":
        inner = node.child_by_field_name("definition")
        return _kind(inner, inside) if inner is not None else "function"
    if any(w in t for w in ("function", "method", "constructor")):
        return "method" if inside else "function"
    if t.startswith(("type_", "type_alias")) or t == "type_definition":
        return "type"
    if t.startswith(("module", "namespace", "mod_")):
        return "module"
    if any(w in t for w in _CONTAINER_WORDS):
        return "class"
    return "method" if inside else "function"


def _is_container(node: ts.Node) -> bool:
    t = node.type
    if t == "decorated_definition":
        inner = node.child_by_field_name("definition")
        return inner is not None and _is_container(inner)
    return not any(w in t for w in ("function", "method", "constructor")) and any(w in t for w in _CONTAINER_WORDS)


def _text(node: ts.Node) -> str:
    raw = node.text or b""
    return raw.decode("utf-8", errors="replace")


def _name(node: ts.Node) -> str | None:
    name = _own_name(node)
    receiver = node.child_by_field_name("receiver")  # Go methods: qualify with the receiver type
    if name and receiver is not None and receiver.named_children:
        rtype = receiver.named_children[0].child_by_field_name("type")
        if rtype is not None:
            base = _text(rtype).lstrip("*& ").split("[", 1)[0].strip()
            if base:
                return qualify(base, name)
    return name


def _own_name(node: ts.Node) -> str | None:
    if node.type == "decorated_definition":
        inner = node.child_by_field_name("definition")
        return _name(inner) if inner is not None else None
    fields = ("name", "type") if node.type == "impl_item" else ("name",)  # Rust: impl <type>
    for field in fields:
        child = node.child_by_field_name(field)
        if child is not None:
            return _clean_name(_text(child))
    declarator = node.child_by_field_name("declarator")
    while declarator is not None:
        if declarator.type in _NAME_TYPES or declarator.type.endswith("identifier"):
            return _clean_name(_text(declarator))
        nxt = declarator.child_by_field_name("declarator") or declarator.child_by_field_name("name")
        if nxt is None:
            break
        declarator = nxt
    for child in node.named_children:
        if child.type in _NAME_TYPES:
            return _clean_name(_text(child))
        if child.type in {"type_spec", "variable_declarator"}:
            return _name(child)
    return None


def _clean_name(name: str) -> str | None:
    name = " ".join(name.split())[:200]
    return name or None


def _arrow_function_name(node: ts.Node) -> str | None:
    """``const f = () => ...`` and ``const f = function ...`` in JavaScript/TypeScript."""
    if node.type not in {"lexical_declaration", "variable_declaration"}:
        return None
    for declarator in node.named_children:
        if declarator.type == "variable_declarator":
            value = declarator.child_by_field_name("value")
            name = declarator.child_by_field_name("name")
            if (
                value is not None
                and name is not None
                and value.type in {"arrow_function", "function_expression", "function", "generator_function"}
            ):
                return _clean_name(_text(name))
    return None


def _unwrap(node: ts.Node) -> ts.Node:
    """The definition inside ``export ...`` (JS/TS) or ``template <...>`` (C++), else the node."""
    if node.type in _WRAPPERS:
        for child in node.named_children:
            if _is_definition(child) or _arrow_function_name(child):
                return child
    return node


def _has_body(node: ts.Node) -> bool:
    """A namespace or module with a body (``namespace a { ... }``, not ``mod a;``)."""
    return node.child_by_field_name("body") is not None or any(
        c.type in {"declaration_list", "statement_block", "body_statement"} for c in node.named_children
    )


def _syntax_segments(root: ts.Node, budget: int) -> list[_Segment]:
    """Definitions in document order. Iterative (an explicit stack, not recursion): syntax trees of
    hostile or generated files nest tens of thousands of levels deep."""
    segments: list[_Segment] = []
    # frames: (siblings, index of the next one, enclosing symbol, inside a container)
    stack: list[tuple[list[ts.Node], int, str | None, bool]] = [(root.named_children, 0, None, False)]
    while stack:
        children, index, prefix, inside = stack.pop()
        if index >= len(children):
            continue
        stack.append((children, index + 1, prefix, inside))  # the next sibling, after this subtree
        outer = children[index]
        child = _unwrap(outer)
        arrow = _arrow_function_name(child)
        if _is_definition(child) or arrow:
            name = arrow or _name(child)
            symbol = qualify(prefix, name) if name else prefix
            start = outer.start_point[0]
            back = index - 1
            # comments, decorators and attributes right above belong to the definition
            while (
                back >= 0
                and any(a in children[back].type for a in _ATTACHED)
                and (children[back].end_point[0] >= start - 1)
            ):
                start = children[back].start_point[0]
                back -= 1
            receiver = child.child_by_field_name("receiver") is not None
            kind = "function" if arrow else _kind(child, inside or receiver)
            too_big = outer.end_byte - outer.start_byte > budget
            namespace = child.type in _NAMESPACES and _has_body(child)
            if (too_big or namespace) and not arrow and _is_container(child):
                segments.append(_Segment(start, outer.end_point[0], "container:" + kind, symbol))
                # functions in a C++/C#/Rust/TypeScript namespace stay functions; a Ruby module's are methods
                stack.append((child.named_children, 0, symbol, not namespace or child.type == "module"))
            else:
                segments.append(_Segment(start, outer.end_point[0], kind, symbol))
        elif child.named_child_count:
            stack.append((child.named_children, 0, prefix, inside))
    return segments


# --- markdown -----------------------------------------------------------------------------------------


def _markdown_sections(lines: list[str]) -> list[_Segment]:
    segments: list[_Segment] = []
    path: list[tuple[int, str]] = []
    in_fence = False
    for row, line in enumerate(lines):
        if _MD_FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else _MD_HEADING.match(line)
        if match:
            level = len(match.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, match.group(2))]
            if segments:
                segments[-1].end = row - 1
            segments.append(_Segment(row, len(lines) - 1, "section", " > ".join(t for _, t in path)[:200]))
    return segments


# --- from segments to chunks --------------------------------------------------------------------------


def _materialise(lines: list[str], segments: list[_Segment], budget: int) -> list[Chunk]:
    last = len(lines) - 1
    segments = [_Segment(min(s.start, last), min(s.end, last), s.kind, s.symbol) for s in segments if s.start <= last]
    containers = [s for s in segments if s.kind.startswith("container:")]
    leaves = sorted((s for s in segments if not s.kind.startswith("container:")), key=lambda s: s.start)
    # Clamp leaves so no line belongs to two of them (two nodes can share a line).
    placed: list[_Segment] = []
    for leaf in leaves:
        if placed and leaf.start <= placed[-1].end:
            leaf = _Segment(placed[-1].end + 1, leaf.end, leaf.kind, leaf.symbol)
        if leaf.start <= leaf.end:
            placed.append(leaf)
    # Lines between leaves belong to the innermost container around them, or to the module.
    cuts = sorted({c.start for c in containers} | {c.end + 1 for c in containers})
    pieces: list[_Segment] = []
    row = 0
    for leaf in [*placed, _Segment(len(lines), len(lines), "end", None)]:
        gap_start = row
        while gap_start < leaf.start:
            gap_end = min([c - 1 for c in cuts if gap_start < c <= leaf.start] or [leaf.start - 1])
            owner = _innermost(containers, gap_start)
            kind = owner.kind.split(":", 1)[1] if owner else "module"
            pieces.append(_Segment(gap_start, gap_end, kind, owner.symbol if owner else None))
            gap_start = gap_end + 1
        if leaf.kind != "end":
            pieces.append(leaf)
        row = leaf.end + 1
    chunks: list[Chunk] = []
    for piece in pieces:
        chunks.extend(_split(lines, piece, budget, "lines" if not segments else piece.kind))
    return chunks


def _innermost(containers: list[_Segment], row: int) -> _Segment | None:
    best = None
    for c in containers:
        if c.start <= row <= c.end and (best is None or c.end - c.start < best.end - best.start):
            best = c
    return best


def _split(lines: list[str], seg: _Segment, budget: int, kind: str) -> list[Chunk]:
    """Cut one segment into chunks of at most ``budget`` characters, at blank lines when possible,
    trimming blank lines at both ends."""
    out: list[Chunk] = []
    start = seg.start
    while start <= seg.end:
        while start <= seg.end and not lines[start].strip():
            start += 1
        if start > seg.end:
            break
        size = 0
        end = start
        last_blank = -1
        while end <= seg.end:
            size += len(lines[end]) + 1
            if size > budget and end > start:
                end -= 1
                if last_blank > start and last_blank - start > (end - start) // 2:
                    end = last_blank
                break
            if not lines[end].strip():
                last_blank = end
            end += 1
        end = min(end, seg.end)
        stop = end
        while stop > start and not lines[stop].strip():
            stop -= 1
        out.append(Chunk(start + 1, stop + 1, kind, seg.symbol, "\n".join(lines[start : stop + 1])))
        start = end + 1
    return out
