"""File extensions and names to languages."""

from __future__ import annotations

from pathlib import PurePosixPath

# Languages chunked along syntax (tree-sitter grammar available).
EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
    ".ipp": "cpp", ".inl": "cpp",
    ".cs": "csharp", ".rb": "ruby", ".rake": "ruby", ".gemspec": "ruby", ".php": "php",
    ".kt": "kotlin", ".kts": "kotlin", ".swift": "swift", ".scala": "scala", ".sc": "scala",
    ".lua": "lua", ".sh": "bash", ".bash": "bash", ".zsh": "bash",
    ".md": "markdown", ".markdown": "markdown", ".mdx": "markdown",
    # chunked by lines
    ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".ini": "ini", ".cfg": "ini",
    ".sql": "sql", ".html": "html", ".htm": "html", ".css": "css", ".scss": "scss", ".less": "less",
    ".vue": "vue", ".svelte": "svelte", ".xml": "xml", ".proto": "protobuf", ".graphql": "graphql",
    ".gql": "graphql", ".tf": "hcl", ".hcl": "hcl", ".r": "r", ".jl": "julia", ".dart": "dart",
    ".ex": "elixir", ".exs": "elixir", ".erl": "erlang", ".hs": "haskell", ".ml": "ocaml",
    ".clj": "clojure", ".pl": "perl", ".pm": "perl", ".ps1": "powershell", ".zig": "zig", ".nim": "nim",
    ".rst": "rst", ".txt": "text", ".cmake": "cmake", ".gradle": "groovy", ".groovy": "groovy",
    ".m": "objc", ".mm": "objc", ".f90": "fortran", ".vb": "vbnet", ".fs": "fsharp",
}
FILENAMES: dict[str, str] = {
    "dockerfile": "dockerfile", "makefile": "make", "gnumakefile": "make", "cmakelists.txt": "cmake",
    "rakefile": "ruby", "gemfile": "ruby", "jenkinsfile": "groovy", "vagrantfile": "ruby",
    "readme": "text", "license": "text", "copying": "text",
}
# Extensions that are never text worth reading: skipped without opening the file.
BINARY_EXTENSIONS: frozenset[str] = frozenset(
    """
    .png .jpg .jpeg .gif .bmp .ico .icns .webp .tif .tiff .psd .svgz .heic .avif
    .mp3 .wav .ogg .flac .aac .m4a .mp4 .m4v .mov .avi .mkv .webm .wmv
    .zip .tar .gz .tgz .bz2 .xz .zst .7z .rar .jar .war .ear .whl .egg .deb .rpm .dmg .iso .apk .ipa
    .exe .dll .so .dylib .a .lib .o .obj .pyc .pyo .pyd .class .wasm .bin .dat .db .sqlite .sqlite3
    .pdf .doc .docx .xls .xlsx .ppt .pptx .odt .ods .woff .woff2 .ttf .otf .eot
    .npy .npz .pkl .pickle .pt .pth .onnx .safetensors .h5 .hdf5 .parquet .avro .orc .feather .ckpt
    """.split()
)


def language_for(rel_path: str) -> str:
    path = PurePosixPath(rel_path)
    name = path.name.lower()
    if name in FILENAMES:
        return FILENAMES[name]
    if name.startswith("dockerfile"):
        return "dockerfile"
    return EXTENSIONS.get(path.suffix.lower(), "text")
