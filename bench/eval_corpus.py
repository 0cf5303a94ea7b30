"""Build the multi-language evaluation corpus and its queries, bit for bit, from pinned packages.

    python bench/eval_corpus.py [--languages python,go] [--max-per-kind 300]

Every source archive is pinned by version and sha256 (a changed archive stops the build). Sources come
from PyPI sdists (`pip download`), npm tarballs (`npm pack`) and Debian packages (`apt-get download`):
see shared/research/benchmark-corpora.md. The tree is laid out as bench/.corpus/eval-multi/LANG/REPO/
(one project per language, one repository per package) and the queries go to
bench/.corpus/eval-multi/queries.jsonl. Three kinds of query per language:

- ``doc``: a doc comment's first sentence; the answer is the definition it documents;
- ``identifier``: a definition's name (names defined once in the language's corpus); the answer is the
  definition;
- ``module``: a module's or file's doc comment (Python module docstring, Go package comment, Rust
  ``//!``, a JSDoc file header, a Ruby file header); the answer is the file.

Every doc comment found (attached to a definition, or a module's) is removed from the indexed tree with
line numbers kept: comment lines become blank lines, a Python docstring becomes ``...``. Targets in test
files are not used (the files stay indexed). Queries are sampled with fixed seeds; each carries a
``split`` (``tune`` or ``report``) from a hash of its id, so ranking can be tuned on one half and reported
on the other. The build prints a digest of the whole tree and the queries: equal digests, equal corpus.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from codebase_mcp.indexing.chunker import _parser

ROOT = Path(__file__).parent / ".corpus" / "eval-multi"
DOWNLOADS = Path(__file__).parent / ".corpus" / "eval-multi-downloads"
QUERIES = ROOT / "queries.jsonl"
KINDS = ("doc", "identifier", "module")


@dataclass(frozen=True)
class Source:
    language: str
    repo: str  # folder name under LANG/: the repository name the product reports
    registry: str  # pypi, npm, deb
    name: str
    version: str
    sha256: str
    subdir: str  # folder inside the unpacked archive that becomes the repository


SOURCES: list[Source] = [
    # Python: PyPI source distributions, whole sdist (package, tests, docs)
    Source("python", "requests", "pypi", "requests", "2.32.3",
           "55365417734eb18255590a9ff9eb97e9e1da868d4ccd6402399eaf68af20a760", "requests-2.32.3"),
    Source("python", "attrs", "pypi", "attrs", "24.2.0",
           "5cfb1b9148b5b086569baec03f20d7b6bf3bcacc9a42bebf87ffaaca362f6346", "attrs-24.2.0"),
    Source("python", "werkzeug", "pypi", "werkzeug", "3.0.4",
           "34f2371506b250df4d4f84bfe7b0921e4762525762bbd936614909fe25cd7306", "werkzeug-3.0.4"),
    Source("python", "marshmallow", "pypi", "marshmallow", "3.22.0",
           "4972f529104a220bb8637d595aa4c9762afbe7f7a77d82dc58c1615d70c5823e", "marshmallow-3.22.0"),
    # TypeScript: npm tarballs that ship their sources (only src/ is kept: dist/ repeats it compiled)
    Source("typescript", "rxjs", "npm", "rxjs", "7.8.1",
           "c532167725ab7d085123209156c93cef22f2479cb9c8527060f1cd903aa9d149", "package/src"),
    Source("typescript", "immer", "npm", "immer", "10.1.1",
           "946cc79684ad1e080b09d4f2da14247b272aa667f3aaa100f35846148689f08f", "package/src"),
    # JavaScript: npm tarballs whose published code is the hand-written source with JSDoc
    Source("javascript", "axios", "npm", "axios", "1.7.7",
           "5f2dde3882446ea1cb5094dd7db99b4ed7cf09f0c96be646a8d30959b0923bec", "package/lib"),
    Source("javascript", "commander", "npm", "commander", "12.1.0",
           "56affc6ddafe486f94b428ae2823d059cf60d4dae2f33eaaf1b1ec4306f73173", "package/lib"),
    # Go: Debian golang-*-dev packages (module sources)
    Source("go", "cobra", "deb", "golang-github-spf13-cobra-dev", "1.6.1-1",
           "4f5d20855133319beef3c5b49d3c21a0406f270bf94fb4b6f4d406b691283cb2",
           "usr/share/gocode/src/github.com/spf13/cobra"),
    Source("go", "pflag", "deb", "golang-github-spf13-pflag-dev", "1.0.6~git20210604-d5e0c0615ace-1",
           "bd1c3c2a3e47512a64da02ebea900eb5a3f3c5d386e559d5718a3a935c0ea570",
           "usr/share/gocode/src/github.com/spf13/pflag"),
    Source("go", "logrus", "deb", "golang-github-sirupsen-logrus-dev", "1.9.0-1",
           "51fb87b05452e96be38b97c03d5f997f6ce3a144421f911338d6c4ea2e8aa118",
           "usr/share/gocode/src/github.com/sirupsen/logrus"),
    Source("go", "mux", "deb", "golang-github-gorilla-mux-dev", "1.8.0-1",
           "0880a4019fe68496a0e0a749c2948c029e489f49edd448bed2fedaba33f848c2",
           "usr/share/gocode/src/github.com/gorilla/mux"),
    Source("go", "cli", "deb", "golang-github-urfave-cli-v2-dev", "2.3.0-2",
           "13d2a5cdf924d4c161d2f75d173888fc4dd4b1d0e04f64418f915979c811aa53",
           "usr/share/gocode/src/github.com/urfave/cli"),
    # Rust: Debian librust-*-dev packages (crate sources)
    Source("rust", "serde", "deb", "librust-serde-dev", "1.0.152-2",
           "c3ff1f1db5056118a102a6b06043cea152bf0b63e96fd71a16e9c827959fcc78",
           "usr/share/cargo/registry/serde-1.0.152"),
    Source("rust", "regex-syntax", "deb", "librust-regex-syntax-dev", "0.6.27-1",
           "16c9879e07d6f9c6b2618906126d17e51ec8b04bced0fe3bb0cf0f3062f8a353",
           "usr/share/cargo/registry/regex-syntax-0.6.27"),
    Source("rust", "anyhow", "deb", "librust-anyhow-dev", "1.0.69-1",
           "f877f024d95d8af3c3f62e2cf74e6ba5eb976a3cf27c920bda786cd32029b79d",
           "usr/share/cargo/registry/anyhow-1.0.69"),
    Source("rust", "itertools", "deb", "librust-itertools-dev", "0.10.3-1",
           "3e13fc328508275c2c84270133f41a300ffb58b9b77001b89373ba7f7ab57fde",
           "usr/share/cargo/registry/itertools-0.10.3"),
    Source("rust", "bytes", "deb", "librust-bytes-dev", "1.2.1-1",
           "86fbba5fe9d10f1eeb28944e52cfc8caa75f9a509c3603b70f8107f151744fcc",
           "usr/share/cargo/registry/bytes-1.2.1"),
    Source("rust", "indexmap", "deb", "librust-indexmap-dev", "1.9.2-1",
           "691b9efb8df4abdfdb238713c1f66416f31e2c2a33fd15687aae2c4dcb9b5308",
           "usr/share/cargo/registry/indexmap-1.9.2"),
    # Ruby: Debian ruby-* packages (gem sources)
    Source("ruby", "rack", "deb", "ruby-rack", "2.2.22-0+deb12u2",
           "7ba26a66f6981b48ac604c9b829de51bdfc5d5ec8f329cf823b0aab72f718354",
           "usr/share/rubygems-integration/all/gems/rack-2.2.22"),
    Source("ruby", "thor", "deb", "ruby-thor", "1.2.1-2",
           "509715d16039ee7336531718e2497d0f81ae125b9ee53f321dd909c2f03fd2e1",
           "usr/share/rubygems-integration/all/gems/thor-1.2.1"),
    Source("ruby", "i18n", "deb", "ruby-i18n", "1.10.0-2",
           "ad7d40173fa8b64baffd4b792eaf5a329f80f395580e79beb6c12777b6a80fa3",
           "usr/share/rubygems-integration/all/gems/i18n-1.10.0"),
    Source("ruby", "mustermann", "deb", "ruby-mustermann", "3.0.0-2",
           "951ce99726f797e9d28e4f64175733e007930109d295e8070e46ecf6f862c892",
           "usr/share/rubygems-integration/all/gems/mustermann-3.0.0"),
    Source("ruby", "addressable", "deb", "ruby-addressable", "2.8.1-1",
           "4d6027d0bd7c2d63e965a2f728d30aba0f64e2745742c2ac861f163b7aa887fb",
           "usr/share/rubygems-integration/all/gems/addressable-2.8.1"),
]  # fmt: skip

LANGUAGES = sorted({s.language for s in SOURCES})
EXTENSIONS = {
    "python": (".py",),
    "typescript": (".ts", ".tsx", ".mts", ".cts"),
    "javascript": (".js", ".mjs", ".cjs", ".jsx"),
    "go": (".go",),
    "rust": (".rs",),
    "ruby": (".rb",),
}
_TEST_PATH = re.compile(
    r"(^|/)(tests?|spec|specs|testing|testdata|benches|bench|examples?|__tests__)(/|$)"
    r"|(^|/)test_[^/]*\.py$|_test\.(go|py)$|\.(test|spec)\.[jt]sx?$|_spec\.rb$|(^|/)conftest\.py$"
)
_SENTENCE = re.compile(r"^(.+?[.!?])(\s|$)", re.S)
_JSDOC_LINK = re.compile(r"\{@(?:link|linkcode|linkplain)\s+([^}|\s]+)[^}]*\}")
_MD_LINK = re.compile(r"\[`?([^\]`]+)`?\]\([^)]*\)")


# --- archives -----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(src: Source) -> Path:
    """The pinned archive, downloaded once into DOWNLOADS and checked against its sha256 every time."""
    folder = DOWNLOADS / src.registry
    folder.mkdir(parents=True, exist_ok=True)
    found = _find_archive(folder, src)
    if found is None:
        with tempfile.TemporaryDirectory() as tmp:
            if src.registry == "pypi":
                cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
                cmd += ["-d", tmp, f"{src.name}=={src.version}"]
            elif src.registry == "npm":
                cmd = ["npm", "pack", "--silent", "--pack-destination", tmp, f"{src.name}@{src.version}"]
            else:
                cmd = ["apt-get", "download", "-q", f"{src.name}={src.version}"]
            subprocess.run(cmd, check=True, cwd=tmp, stdout=subprocess.DEVNULL)
            for item in sorted(Path(tmp).iterdir()):
                shutil.move(str(item), folder / item.name)
        found = _find_archive(folder, src)
        if found is None:
            sys.exit(f"{src.registry} {src.name} {src.version}: downloaded, but no archive found in {folder}")
    digest = _sha256(found)
    if digest != src.sha256:
        sys.exit(
            f"{found.name}: sha256 {digest} but {src.sha256} is pinned. The published archive changed; "
            "the evaluation corpus would no longer be the recorded one. Stop and look."
        )
    return found


def _find_archive(folder: Path, src: Source) -> Path | None:
    if src.registry == "deb":
        quoted = src.version.replace(":", "%3a")
        patterns = [f"{src.name}_{quoted}_*.deb"]
    elif src.registry == "npm":
        patterns = [f"{src.name}-{src.version}.tgz"]
    else:
        patterns = [f"{src.name}-{src.version}.tar.gz", f"{src.name.replace('-', '_')}-{src.version}.tar.gz"]
    for pattern in patterns:
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    return None


def unpack(src: Source, archive: Path, dest: Path) -> None:
    """Regular files of ``src.subdir`` inside the archive, written under ``dest`` (links are dropped)."""
    if src.registry == "deb":
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)], check=True, capture_output=True).stdout
    else:
        data = archive.read_bytes()
    prefix = src.subdir.strip("/") + "/"
    count = 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("./")
            if not member.isfile() or not name.startswith(prefix):
                continue
            rel = PurePosixPath(name[len(prefix) :])
            if any(part in ("", "..") for part in rel.parts):
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            extracted = tar.extractfile(member)
            assert extracted is not None
            out.write_bytes(extracted.read())
            count += 1
    if not count:
        sys.exit(f"{archive.name}: nothing under {src.subdir}")


# --- doc comments and definitions ------------------------------------------------------------------


@dataclass
class Definition:
    name: str
    line: int  # 1-based line of the definition (the target)
    doc: str | None  # the doc comment's text, markers removed


@dataclass
class FileInfo:
    definitions: list[Definition]
    module_doc: str | None
    blank: set[int]  # 0-based rows whose comment is removed
    docstring_rows: dict[int, int]  # Python: first docstring row -> last row (replaced by ``...``)


_DEF_TYPES = {
    "go": {"function_declaration", "method_declaration", "type_declaration"},
    "rust": {
        "function_item",
        "function_signature_item",
        "struct_item",
        "enum_item",
        "union_item",
        "trait_item",
        "type_item",
        "mod_item",
        "const_item",
        "static_item",
        "macro_definition",
    },
    "typescript": {
        "function_declaration",
        "generator_function_declaration",
        "function_signature",
        "class_declaration",
        "abstract_class_declaration",
        "method_definition",
        "abstract_method_signature",
        "method_signature",
        "interface_declaration",
        "type_alias_declaration",
        "enum_declaration",
        "lexical_declaration",
        "variable_declaration",
        "expression_statement",
    },
    "ruby": {"method", "singleton_method", "class", "module"},
}
_DEF_TYPES["javascript"] = _DEF_TYPES["typescript"]
_COMMENT_TYPES = {"comment", "line_comment", "block_comment"}
_FUNCTION_VALUES = {"function_expression", "arrow_function", "function", "generator_function", "class"}


def _def_name(node, language: str) -> str | None:  # type: ignore[no-untyped-def]
    kind = node.type
    if kind == "type_declaration":
        spec = next((c for c in node.named_children if c.type in ("type_spec", "type_alias")), None)
        node = spec if spec is not None else node
    if kind in ("lexical_declaration", "variable_declaration"):
        decls = [c for c in node.named_children if c.type == "variable_declarator"]
        if len(decls) != 1:
            return None
        node = decls[0]
    if kind == "expression_statement":
        expr = node.named_children[0] if node.named_children else None
        if expr is None or expr.type != "assignment_expression":
            return None
        right = expr.child_by_field_name("right")
        left = expr.child_by_field_name("left")
        if right is None or left is None or right.type not in _FUNCTION_VALUES:
            return None
        text = left.text.decode("utf-8", "replace")
        return re.split(r"[.\[\]'\"]+", text.strip("]'\""))[-1] or None
    name = node.child_by_field_name("name")
    if name is None:
        return None
    text = name.text.decode("utf-8", "replace")
    return text if re.fullmatch(r"[A-Za-z_$][\w$?!=]*", text) else None


def _is_doc(text: str, language: str) -> bool:
    if language == "rust":
        return (text.startswith("///") and not text.startswith("////")) or text.startswith("/**")
    if language in ("typescript", "javascript"):
        return text.startswith("/**") and not text.startswith("/**/")
    if language == "go":
        return text.startswith("//") and not re.match(r"//(go:|\s*\+build|nolint)", text)
    if language == "ruby":
        return text.startswith("#") and not re.match(r"#(!|\s*(frozen_string_literal|-\*-|rubocop:|encoding))", text)
    return False


def clean_comment(lines: list[str]) -> str:
    """Comment lines to plain text: markers removed, stops at the first tag line (``@param``)."""
    out: list[str] = []
    for raw in lines:
        line = raw.strip()
        line = re.sub(r"^(///?|//!|/\*\*?|#+)", "", line)
        line = re.sub(r"\*+/$", "", line).strip()
        line = re.sub(r"^\*(\s|$)", "", line).strip()
        if line.startswith("@") or line.startswith("```"):
            break
        out.append(line)
    return "\n".join(out).strip()


def first_sentence(text: str) -> str | None:
    paragraph = text.strip().split("\n\n")[0]
    flat = " ".join(paragraph.split())
    flat = _JSDOC_LINK.sub(r"\1", flat)
    flat = _MD_LINK.sub(r"\1", flat).replace("`", "")
    m = _SENTENCE.match(flat)
    sentence = (m.group(1) if m else flat).strip()
    words = sentence.split()
    if not 4 <= len(words) <= 60:
        return None
    if re.match(r"(?i)(:|\.\.|>>>|#|-|=|\*|\||todo\b|fixme\b|deprecated\b|copyright\b|spdx\b|license\b)", sentence):
        return None
    if not re.search(r"[A-Za-z]{3}", sentence):
        return None
    return sentence


def _own_line(node, lines: list[str]) -> bool:  # type: ignore[no-untyped-def]
    start_row, start_col = node.start_point
    end_row, end_col = node.end_point
    if end_col == 0 and end_row > start_row:  # Rust line comments end on the next row, column 0
        end_row -= 1
        end_col = len(lines[end_row])
    before = lines[start_row][:start_col]
    after = lines[end_row][end_col:] if end_row < len(lines) else ""
    return not before.strip() and not after.strip()


def _rows(node) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    start, end = node.start_point[0], node.end_point[0]
    if node.end_point[1] == 0 and end > start:
        end -= 1
    return start, end


def analyse_tree_sitter(source: str, language: str) -> FileInfo:
    parser = _parser(language)
    assert parser is not None
    tree = parser.parse(source.encode("utf-8"))
    lines = source.split("\n")
    comments_by_end: dict[int, tuple[int, str]] = {}  # end row -> (start row, text)
    defs: list[tuple[int, int, str | None]] = []  # (anchor row, target row, name)
    stack = [tree.root_node]
    top_level = [c for c in tree.root_node.children]
    while stack:
        node = stack.pop()
        if node.type in _COMMENT_TYPES:
            if _own_line(node, lines):
                start, end = _rows(node)
                comments_by_end[end] = (start, node.text.decode("utf-8", "replace"))
            continue
        if node.type in _DEF_TYPES[language]:
            anchor = node
            while anchor.parent is not None and anchor.parent.type in ("export_statement", "decorated_definition"):
                anchor = anchor.parent
            statement = node.type in ("expression_statement", "lexical_declaration", "variable_declaration")
            if not statement or (anchor.parent is not None and anchor.parent.type == "program"):
                defs.append((anchor.start_point[0], node.start_point[0], _def_name(node, language)))
        stack.extend(reversed(node.children))

    def doc_above(row: int) -> tuple[int, int, str] | None:
        r = row - 1
        while r >= 0 and re.match(r"\s*(#\[|#!\[|@\w)", lines[r]) and r not in comments_by_end:
            r -= 1  # attributes and decorators sit between a doc comment and its definition
        if r not in comments_by_end:
            return None
        start, text = comments_by_end[r]
        if not _is_doc(text, language):
            return None
        parts = [text]
        block_end = r
        line_style = text.startswith(("//", "#"))
        while line_style and start - 1 in comments_by_end:
            prev_start, prev_text = comments_by_end[start - 1]
            if not _is_doc(prev_text, language) or (language == "rust" and prev_text[:3] != text[:3]):
                break
            parts.insert(0, prev_text)
            start = prev_start
        return start, block_end, "\n".join(parts)

    info = FileInfo([], None, set(), {})
    for anchor, target, name in sorted(defs, key=lambda d: (d[0], d[1])):
        found = doc_above(anchor)
        doc = None
        if found is not None:
            start, end, text = found
            info.blank.update(range(start, end + 1))
            doc = clean_comment(text.split("\n"))
        if name is not None:
            info.definitions.append(Definition(name, target + 1, doc))

    module_rows, module_text = _module_doc(top_level, lines, language, comments_by_end)
    if module_rows and not module_rows & info.blank:
        info.module_doc = clean_comment(module_text.split("\n"))
        info.blank.update(module_rows)
    return info


def _module_doc(top_level, lines, language, comments_by_end):  # type: ignore[no-untyped-def]
    """Rows and text of the file's own doc comment (empty when it has none)."""
    rows: set[int] = set()
    parts: list[str] = []
    if language == "go":
        pkg = next((c for c in top_level if c.type == "package_clause"), None)
        if pkg is None:
            return rows, ""
        r = pkg.start_point[0] - 1
        while r in comments_by_end and _is_doc(comments_by_end[r][1], "go"):
            start, text = comments_by_end[r]
            parts.insert(0, text)
            rows.update(range(start, r + 1))
            r = start - 1
        return rows, "\n".join(parts)
    if language == "rust":
        for node in top_level:
            if node.type in _COMMENT_TYPES:
                text = node.text.decode("utf-8", "replace")
                if text.startswith(("//!", "/*!")):
                    start, end = _rows(node)
                    rows.update(range(start, end + 1))
                    parts.append(text.replace("//!", "//").replace("/*!", "/*"))
                continue
            if node.type == "inner_attribute_item":
                continue
            break
        return rows, "\n".join(parts)
    # JavaScript, TypeScript, Ruby: the leading comment block, when it is not glued to the code below
    first_code = next((c for c in top_level if c.type not in _COMMENT_TYPES), None)
    code_row = first_code.start_point[0] if first_code is not None else len(lines)
    for node in top_level:
        if node.type not in _COMMENT_TYPES:
            break
        text = node.text.decode("utf-8", "replace")
        start, end = _rows(node)
        if language == "ruby" and not _is_doc(text, "ruby"):
            if parts:
                break
            continue
        if language != "ruby" and not text.startswith("/**"):
            continue
        if end + 1 >= code_row or re.search(r"(?i)copyright|license|@license|eslint|@ts-", text):
            break
        parts.append(text)
        rows.update(range(start, end + 1))
        if language != "ruby":
            break
        nxt = end + 1
        if nxt < len(lines) and not lines[nxt].strip():
            break
    if language == "ruby" and rows and max(rows) + 1 < len(lines) and lines[max(rows) + 1].strip():
        return set(), ""  # glued to the class or module below: that is its doc, not the file's
    return rows, "\n".join(parts)


def analyse_python(source: str) -> FileInfo | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    info = FileInfo([], None, set(), {})
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            continue
        body = node.body
        doc = None
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            doc = body[0].value.value
            start, end = body[0].lineno - 1, (body[0].end_lineno or body[0].lineno) - 1
            if isinstance(node, ast.Module):
                info.module_doc = doc
                info.blank.update(range(start, end + 1))
            else:
                info.docstring_rows[start] = end
        if not isinstance(node, ast.Module):
            info.definitions.append(Definition(node.name, node.lineno, doc))
    info.definitions.sort(key=lambda d: d.line)
    return info


def strip(source: str, info: FileInfo) -> str:
    lines = source.split("\n")
    for row in info.blank:
        lines[row] = ""
    for start, end in info.docstring_rows.items():
        line = lines[start]
        lines[start] = line[: len(line) - len(line.lstrip())] + "..."
        for row in range(start + 1, end + 1):
            lines[row] = ""
    return "\n".join(lines)


# --- queries -------------------------------------------------------------------------------------


@dataclass
class Query:
    id: str
    language: str
    kind: str
    query: str
    repo: str
    path: str
    line: int | None  # None for module queries: any chunk of the file answers
    split: str


def split_of(query_id: str) -> str:
    return "tune" if hashlib.sha256(query_id.encode()).digest()[0] % 2 == 0 else "report"


def make_query(language: str, kind: str, text: str, repo: str, path: str, line: int | None) -> Query:
    qid = f"{language}/{kind}/{repo}/{path}:{line or 0}"
    return Query(qid, language, kind, text, repo, path, line, split_of(qid))


def build_language(language: str, max_per_kind: int) -> tuple[list[Query], dict[str, int]]:
    dest = ROOT / language
    shutil.rmtree(dest, ignore_errors=True)
    sources = [s for s in SOURCES if s.language == language]
    for src in sources:
        unpack(src, fetch(src), dest / src.repo)
    candidates: dict[str, list[Query]] = {k: [] for k in KINDS}
    names: Counter[str] = Counter()
    named: list[tuple[str, str, Definition]] = []
    stats = Counter[str]()
    for src in sources:
        repo_root = dest / src.repo
        for path in sorted(p for p in repo_root.rglob("*") if p.is_file() and p.suffix in EXTENSIONS[language]):
            rel = path.relative_to(repo_root).as_posix()
            source = path.read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")
            info = analyse_python(source) if language == "python" else analyse_tree_sitter(source, language)
            if info is None:
                continue
            stats["source files"] += 1
            path.write_text(strip(source, info), encoding="utf-8")
            for d in info.definitions:
                names[d.name] += 1
            if _TEST_PATH.search(rel):
                continue
            for d in info.definitions:
                named.append((src.repo, rel, d))
                sentence = first_sentence(d.doc) if d.doc else None
                if sentence:
                    candidates["doc"].append(make_query(language, "doc", sentence, src.repo, rel, d.line))
            sentence = first_sentence(info.module_doc) if info.module_doc else None
            if sentence:
                candidates["module"].append(make_query(language, "module", sentence, src.repo, rel, None))
    for repo, rel, d in named:
        if names[d.name] == 1 and len(d.name) >= 4 and not d.name.startswith("__"):
            candidates["identifier"].append(make_query(language, "identifier", d.name, repo, rel, d.line))
    out: list[Query] = []
    for kind in KINDS:
        unique = {q.id: q for q in candidates[kind]}  # one query per target
        pool = [unique[k] for k in sorted(unique)]
        stats[f"{kind} candidates"] = len(pool)
        random.Random(f"{language}/{kind}").shuffle(pool)
        out += pool[:max_per_kind]
    return out, dict(stats)


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def load_queries(path: Path = QUERIES) -> list[Query]:
    return [Query(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--languages", default=",".join(LANGUAGES))
    parser.add_argument("--max-per-kind", type=int, default=300)
    args = parser.parse_args()
    languages = [x for x in args.languages.split(",") if x]
    unknown = set(languages) - set(LANGUAGES)
    if unknown:
        sys.exit(f"unknown languages {sorted(unknown)}; known: {LANGUAGES}")
    ROOT.mkdir(parents=True, exist_ok=True)
    kept = [q for q in load_queries() if q.language not in languages] if QUERIES.exists() else []
    for language in languages:
        queries, stats = build_language(language, args.max_per_kind)
        kept += queries
        counts = Counter(q.kind for q in queries)
        print(
            f"{language:<11} {stats.get('source files', 0):>5} source files · "
            + " · ".join(f"{k} {counts[k]} of {stats.get(k + ' candidates', 0)}" for k in KINDS)
        )
    kept.sort(key=lambda q: (LANGUAGES.index(q.language), KINDS.index(q.kind)))
    QUERIES.write_text("".join(json.dumps(asdict(q), sort_keys=True) + "\n" for q in kept), encoding="utf-8")
    print(f"{len(kept)} queries in {QUERIES}")
    print(f"corpus digest (tree + queries): {tree_digest(ROOT)}")


if __name__ == "__main__":
    main()
