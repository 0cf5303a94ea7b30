"""Tables of dense and hybrid + ranking MRR@10 (chunk level) from evaluate_multi.py --json runs.

python train/compare.py stock=stock.json query=a.json symmetric=b.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    runs = {label: json.loads(Path(path).read_text()) for label, path in (a.split("=", 1) for a in sys.argv[1:])}
    cells = {
        (label, c["language"], c["kind"], c["mode"]): (c["mrr10"], c["n"])
        for label, data in runs.items()
        for c in data["cells"]
        if c["level"] == "chunk"
    }
    keys = sorted({(lang, kind) for (_, lang, kind, _) in cells})
    labels = list(runs)
    for mode in ("dense", "hybrid+rank"):
        print(f"\n{mode}, chunk-level MRR@10\n")
        print(
            "| language | kind | n | "
            + " | ".join(labels)
            + " | "
            + " | ".join(f"{x} − {labels[0]}" for x in labels[1:])
            + " |"
        )
        print("|---" * (3 + 2 * len(labels) - 1) + "|")
        for lang, kind in keys:
            values = [cells.get((label, lang, kind, mode), (None, 0)) for label in labels]
            if values[0][0] is None:
                continue
            base = values[0][0]
            deltas = [f"{v[0] - base:+.3f}" if v[0] is not None else "–" for v in values[1:]]
            shown = [f"{v[0]:.3f}" if v[0] is not None else "–" for v in values]
            print(f"| {lang} | {kind} | {values[0][1]} | " + " | ".join(shown) + " | " + " | ".join(deltas) + " |")
        # per language, all kinds (n-weighted)
        for lang in sorted({k[0] for k in keys}):
            row = []
            for label in labels:
                parts = [
                    cells[(label, lang, kind, mode)]
                    for (lg, kind) in keys
                    if lg == lang and (label, lang, kind, mode) in cells
                ]
                total = sum(n for _, n in parts)
                row.append(sum(m * n for m, n in parts) / total if total else float("nan"))
            deltas = [f"{v - row[0]:+.3f}" for v in row[1:]]
            print(f"| {lang} | all | | " + " | ".join(f"{v:.3f}" for v in row) + " | " + " | ".join(deltas) + " |")


if __name__ == "__main__":
    main()
