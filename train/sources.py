"""The training inputs: pinned source archives from PyPI, npm and Debian, and what is excluded.

``manifest.json`` (next to this file) is the record: one entry per archive with its registry, name,
version, sha256 and licence. ``python train/sources.py pin`` downloads the candidates below that are not
pinned yet (latest version for PyPI and npm, Debian's candidate), checks the exclusions and licences, and
adds them; every later run downloads exactly the pinned archives and stops on a changed sha256.
"""

from __future__ import annotations

import email.parser
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

HERE = Path(__file__).parent
MANIFEST = HERE / "manifest.json"
DATA = HERE / ".data"
DOWNLOADS = DATA / "downloads"
SOURCES = DATA / "src"
BENCH = HERE.parent / "bench"

#: (language, registry, name): what ``pin`` adds. Each language's packages were chosen among
#: permissively licensed, documented libraries that are in none of the lists below.
CANDIDATES: list[tuple[str, str, str]] = [
    *(("python", "pypi", n) for n in (
        "more-itertools", "boltons", "toolz", "cachetools", "tenacity", "sortedcontainers", "pyparsing",
        "jsonschema", "sqlparse", "networkx", "humanize", "arrow", "python-dateutil", "parso", "tabulate",
        "voluptuous", "wrapt", "bleach",
    )),
    *(("javascript", "npm", n) for n in (
        "lodash", "ramda", "underscore", "preact", "moment", "acorn", "handlebars", "async", "d3-array",
        "d3-scale", "validator", "yargs",
    )),
    *(("typescript", "npm", n) for n in ("fp-ts", "io-ts", "marked", "superstruct", "ts-pattern", "neverthrow")),
    *(("go", "deb", f"golang-{n}-dev") for n in (
        "github-google-uuid", "github-stretchr-testify", "github-spf13-cast", "github-mitchellh-mapstructure",
        "github-fatih-color", "github-gorilla-websocket", "github-go-playground-validator-v10",
        "github-robfig-cron", "github-dustin-go-humanize", "github-google-go-cmp", "github-yuin-goldmark",
        "github-burntsushi-toml", "github-masterminds-semver", "gopkg-yaml.v3", "github-json-iterator-go",
        "github-pelletier-go-toml.v2",
    )),
    *(("rust", "deb", f"librust-{n}-dev") for n in (
        "smallvec", "rand", "log", "memchr", "once-cell", "thiserror", "num-traits", "chrono", "semver",
        "either", "crossbeam-utils", "parking-lot", "walkdir", "glob", "url", "base64", "byteorder",
        "bitflags", "nom", "petgraph", "rayon", "hashbrown",
    )),
]  # fmt: skip

#: shared/research/reserved-for-evaluation.md, lists 1 and 2 (lower case, as project names).
RESERVED = {
    "requests", "flask", "click", "rich", "jinja2", "werkzeug", "httpx", "attrs", "pydantic", "starlette",
    "urllib3", "packaging", "pluggy", "marshmallow", "itsdangerous", "alamofire", "bash-it", "dapper",
    "jackson-databind", "zig-clap", "newtonsoft.json", "exposed", "kotlinx.coroutines", "model2vec", "monolog",
    "snapkit", "abseil-cpp", "aiohttp", "commons-lang", "axios", "bats-core", "circe", "zod", "curl",
    "mini.nvim", "ecto", "plug", "express", "fastapi", "fmt", "lazy.nvim", "gin", "chi", "gson", "guzzle",
    "aeson", "http4s", "pandoc", "ktor", "laravel", "messagepack-csharp", "nlohmann", "json", "telescope.nvim",
    "nvm", "phoenix", "rack", "rails", "redis", "redux", "serde", "sinatra", "cobra", "axum", "tokio", "trpc",
    "cats", "vapor", "vitest", "xmonad", "zig", "zls",
    # vendors of the above: pip (requests, urllib3, packaging, rich), setuptools (packaging)
    "pip", "setuptools",
}  # fmt: skip
PERMISSIVE = re.compile(r"(?i)\b(mit|expat|bsd|apache|isc|psf|python software foundation|zlib|unlicense|0bsd)\b")


@dataclass(frozen=True)
class Source:
    language: str
    repo: str  # folder under SOURCES/LANG/
    registry: str  # pypi, npm, deb
    name: str
    version: str
    sha256: str
    licence: str


def evaluation_names() -> set[str]:
    """Project names of our own evaluation corpora: bench/eval_corpus.py, bench/evaluate.py, bench/agent_eval."""
    sys.path.insert(0, str(BENCH))
    import eval_corpus

    names = {s.repo.lower() for s in eval_corpus.SOURCES} | {s.name.lower() for s in eval_corpus.SOURCES}
    text = (BENCH / "evaluate.py").read_text(encoding="utf-8")
    match = re.search(r"EVAL_PACKAGES = \[(.*?)\]", text)
    assert match is not None
    names |= {n.strip().strip('"').lower() for n in match.group(1).split(",")}
    for path in sorted((BENCH / "agent_eval").glob("*/source.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        names |= {data["repo"].lower(), data["name"].lower()}
    return names


def project_name(registry: str, name: str) -> str:
    """The project a package name stands for: golang-github-spf13-cobra-dev -> cobra, librust-serde-dev -> serde."""
    n = name.lower()
    if registry == "deb":
        n = re.sub(r"^(golang-|librust-|ruby-|php-)", "", n).removesuffix("-dev")
        n = n.split("-")[-1] if n.startswith(("github-", "gopkg-", "golang-")) else n
    return n


def excluded(registry: str, name: str, banned: set[str]) -> str | None:
    """Why a package may not be used, or None."""
    full = name.lower()
    short = project_name(registry, name)
    for word in (full, short, full.replace("_", "-")):
        if word in banned:
            return f"{name}: {word} is reserved for evaluation"
    return None


def load_manifest() -> list[Source]:
    if not MANIFEST.exists():
        return []
    return [Source(**e) for e in json.loads(MANIFEST.read_text(encoding="utf-8"))["packages"]]


def write_manifest(sources: list[Source]) -> None:
    body = {
        "about": "Training inputs of train/ (issue 20); nothing here is in shared/research/"
        "reserved-for-evaluation.md nor in bench/'s evaluation corpora. Written by `python train/sources.py pin`.",
        "packages": [asdict(s) for s in sorted(sources, key=lambda s: (s.language, s.name))],
    }
    MANIFEST.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download(registry: str, name: str, version: str | None, dest: Path) -> Path:
    """Download one archive into ``dest`` with the registry's own client; returns its path."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if registry == "pypi":
            spec = f"{name}=={version}" if version else name
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", tmp, spec]
        elif registry == "npm":
            cmd = ["npm", "pack", "--silent", "--pack-destination", tmp, f"{name}@{version}" if version else name]
        else:
            cmd = ["apt-get", "download", "-q", f"{name}={version}" if version else name]
        subprocess.run(cmd, check=True, cwd=tmp, stdout=subprocess.DEVNULL)
        files = sorted(Path(tmp).iterdir())
        if len(files) != 1:
            sys.exit(f"{registry} {name}: expected one archive, got {[f.name for f in files]}")
        out = dest / files[0].name
        files[0].replace(out)
    return out


def archive_for(src: Source) -> Path:
    """The pinned archive (downloaded once), checked against its sha256."""
    folder = DOWNLOADS / src.registry
    marker = folder / f"{src.name}@{src.version}.path"
    path = Path(marker.read_text(encoding="utf-8")) if marker.exists() else None
    if path is None or not path.exists():
        path = download(src.registry, src.name, src.version, folder)
        marker.write_text(str(path), encoding="utf-8")
    digest = _sha256(path)
    if digest != src.sha256:
        sys.exit(f"{path.name}: sha256 {digest}, but {src.sha256} is pinned: the published archive changed.")
    return path


def _members(registry: str, archive: Path) -> list[tuple[PurePosixPath, bytes]]:
    if registry == "deb":
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)], check=True, capture_output=True).stdout
    else:
        data = archive.read_bytes()
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            rel = PurePosixPath(member.name.removeprefix("./"))
            if not member.isfile() or any(p in ("", "..") for p in rel.parts):
                continue
            extracted = tar.extractfile(member)
            if extracted is not None:
                out.append((rel, extracted.read()))
    return out


def version_and_licence(registry: str, name: str, archive: Path) -> tuple[str, str]:
    members = _members(registry, archive)
    if registry == "pypi":
        info = next(d for p, d in members if len(p.parts) == 2 and p.name == "PKG-INFO")
        meta = email.parser.Parser().parsestr(info.decode("utf-8", "replace"))
        lic = meta.get("License-Expression") or ""
        if not lic or len(lic) > 60:
            classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if "License ::" in c]
            lic = "; ".join(classifiers) or (meta.get("License") or "").splitlines()[0]
        return str(meta["Version"]), lic
    if registry == "npm":
        pkg = json.loads(next(d for p, d in members if str(p) == "package/package.json"))
        lic = pkg.get("license") or ""
        return str(pkg["version"]), lic if isinstance(lic, str) else str(lic.get("type", ""))
    version = archive.name.split("_")[1].replace("%3a", ":")
    copyright_ = next(d for p, d in members if str(p) == f"usr/share/doc/{name}/copyright").decode("utf-8", "replace")
    stanza = re.search(r"(?ms)^Files:\s*\*\s*$.*?^License:\s*(.+?)$", copyright_)
    return version, (stanza.group(1).strip() if stanza else "see copyright")


def pin() -> None:
    banned = RESERVED | evaluation_names()
    pinned = load_manifest()
    have = {(s.registry, s.name) for s in pinned}
    for language, registry, name in CANDIDATES:
        if (registry, name) in have:
            continue
        why = excluded(registry, name, banned)
        if why:
            sys.exit(why)
        archive = download(registry, name, None, DOWNLOADS / registry)
        version, licence = version_and_licence(registry, name, archive)
        if not PERMISSIVE.search(licence):
            print(f"skipped {name} {version}: licence {licence!r}", file=sys.stderr)
            continue
        (DOWNLOADS / registry / f"{name}@{version}.path").write_text(str(archive), encoding="utf-8")
        repo = project_name(registry, name)
        pinned.append(Source(language, repo, registry, name, version, _sha256(archive), licence))
        print(f"pinned {language} {registry} {name} {version} ({licence})", file=sys.stderr)
        write_manifest(pinned)


def unpack(src: Source) -> Path:
    """The archive's regular files under SOURCES/LANG/REPO (once); PyPI and npm lose their top folder."""
    dest = SOURCES / src.language / src.repo
    done = dest.with_name(dest.name + ".complete")
    if done.exists():
        return dest
    for rel, data in _members(src.registry, archive_for(src)):
        if src.registry == "deb":
            keep = rel.parts[:3] in (("usr", "share", "gocode"), ("usr", "share", "cargo"))
            rel = PurePosixPath(*rel.parts[3:]) if keep else rel
        else:
            keep = len(rel.parts) > 1
            rel = PurePosixPath(*rel.parts[1:])
        if not keep:
            continue
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    done.write_text("")
    return dest


if __name__ == "__main__":
    if sys.argv[1:] == ["pin"]:
        pin()
    elif sys.argv[1:] == ["check"]:
        banned = RESERVED | evaluation_names()
        for s in load_manifest():
            assert not excluded(s.registry, s.name, banned), s
            archive_for(s)
        print("every pinned archive is present and matches its sha256")
    else:
        sys.exit("usage: python train/sources.py pin|check")
