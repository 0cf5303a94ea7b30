"""One command for issue 20's CPU route: mine -> embed -> train the two adapters -> weights + figures.

    PYTHONPATH=src python train/run.py [--skip-mine] [--epochs 30] [--seed 0]

Writes train/.data/out/adapter-{query,symmetric}.npy (the float32 map A, 384 x 384) and
train/results.json (data counts, validation MRR@10 per language and kind, time, machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).parent))
from adapter import F32, Adam, apply, infonce_grad
from embed import VectorCache
from sources import DATA, HERE

OUT = DATA / "out"
RESULTS = HERE / "results.json"
DIM = 384


@dataclass
class Data:
    kinds: list[str]
    languages: list[str]
    repos: list[str]
    q: F32  # one row per pair
    target: npt.NDArray[np.int64]  # pool row of each pair's target
    pool: F32
    pool_repo: npt.NDArray[np.int64]
    repo_names: list[str]
    negatives: npt.NDArray[np.int64]  # (pairs, k) pool rows


def load(cache: VectorCache, k_neg: int) -> Data:
    from mine import PAIRS, POOL

    pool_rows = [json.loads(line) for line in POOL.read_text(encoding="utf-8").splitlines()]
    pairs = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines()]
    repo_names = sorted({r["repo"] for r in pool_rows})
    repo_id = {r: i for i, r in enumerate(repo_names)}
    index = {r["text"]: i for i, r in enumerate(pool_rows)}
    pool = cache.embed([r["text"] for r in pool_rows])
    q = cache.embed([p["query"] for p in pairs])
    target = np.array([index[p["target"]] for p in pairs], dtype=np.int64)
    pool_repo = np.array([repo_id[r["repo"]] for r in pool_rows], dtype=np.int64)
    # hard negatives: the frozen model's top chunks of the same repository that are not the target nor a
    # near copy of it (cosine to the target > 0.95)
    negatives = np.zeros((len(pairs), k_neg), dtype=np.int64)
    pair_repo = np.array([repo_id[p["repo"]] for p in pairs], dtype=np.int64)
    for r in range(len(repo_names)):
        rows = np.flatnonzero(pool_repo == r)
        which = np.flatnonzero(pair_repo == r)
        if not len(which):
            continue
        scores = q[which] @ pool[rows].T
        near = (pool[target[which]] @ pool[rows].T) > 0.95
        scores[near] = -np.inf
        top = np.argsort(-scores, axis=1)[:, :k_neg]
        negatives[which] = rows[top]
    return Data(
        [p["kind"] for p in pairs], [p["language"] for p in pairs], [p["repo"] for p in pairs], q, target, pool,
        pool_repo, repo_names, negatives,
    )  # fmt: skip


def validation_repos(data: Data, share: float) -> set[str]:
    """About ``share`` of each language's repositories (the ones whose name hashes lowest): held out."""
    import hashlib

    by_language: dict[str, set[str]] = defaultdict(set)
    for language, repo in zip(data.languages, data.repos, strict=True):
        by_language[language].add(repo)
    held: set[str] = set()
    for repos in by_language.values():
        ordered = sorted(repos, key=lambda r: hashlib.sha256(r.encode()).hexdigest())
        held.update(ordered[: max(1, round(share * len(ordered)))])
    return held


def evaluate(data: Data, rows: npt.NDArray[np.int64], matrix: F32 | None, symmetric: bool) -> dict[str, float]:
    """MRR@10 of each held-out pair's target among all chunks of its repository, per language/kind."""
    q = data.q[rows] if matrix is None else apply(matrix, data.q[rows])
    pool = data.pool if matrix is None or not symmetric else apply(matrix, data.pool)
    repo_id = {r: i for i, r in enumerate(data.repo_names)}
    rr = np.zeros(len(rows))
    for r in {repo_id[data.repos[i]] for i in rows}:
        mine = np.flatnonzero(np.array([repo_id[data.repos[i]] == r for i in rows]))
        cand = np.flatnonzero(data.pool_repo == r)
        scores = q[mine] @ pool[cand].T
        own = np.array([np.flatnonzero(cand == data.target[rows[i]])[0] for i in mine])
        rank = 1 + (scores > scores[np.arange(len(mine)), own][:, None]).sum(axis=1)
        rr[mine] = np.where(rank <= 10, 1.0 / rank, 0.0)
    out: dict[str, list[float]] = defaultdict(list)
    for value, i in zip(rr, rows, strict=True):
        for label in (f"{data.languages[i]}/{data.kinds[i]}", f"all/{data.kinds[i]}", f"{data.languages[i]}/all"):
            out[label].append(float(value))
        out["all/all"].append(float(value))
    return {k: round(float(np.mean(v)), 4) for k, v in sorted(out.items())}


def score(figures: dict[str, float]) -> float:
    """What early stopping watches: the mean of the doc-query MRR over languages and the overall MRR."""
    docs = [v for k, v in figures.items() if k.endswith("/doc") and not k.startswith("all/")]
    return float(np.mean(docs)) / 2 + figures["all/all"] / 2


def sampling_weights(data: Data, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Each language the same share of an epoch; within it, doc and module pairs twice an identifier's."""
    from collections import Counter

    per_language = Counter(data.languages[i] for i in rows)
    kind_weight = {"doc": 2.0, "module": 2.0, "identifier": 1.0}
    w = np.array([kind_weight[data.kinds[i]] for i in rows], dtype=np.float64)
    lang = np.array([data.languages[i] for i in rows])
    for language in per_language:
        w[lang == language] /= w[lang == language].sum()
    out: npt.NDArray[np.float64] = w / w.sum()
    return out


def train(
    data: Data, train_rows: npt.NDArray[np.int64], val_rows: npt.NDArray[np.int64], symmetric: bool,
    args: argparse.Namespace,
) -> tuple[F32, list[dict[str, object]], dict[str, float]]:  # fmt: skip
    rng = np.random.default_rng(args.seed)
    matrix = np.eye(DIM, dtype=np.float32)
    opt = Adam(lr=args.lr)
    best = (score(evaluate(data, val_rows, None, symmetric)), matrix.copy(), 0)
    history: list[dict[str, object]] = []
    patience = 0
    weights = sampling_weights(data, train_rows) if args.balance else None
    for epoch in range(1, args.epochs + 1):
        if weights is None:
            order = rng.permutation(train_rows)
        else:
            order = rng.choice(train_rows, size=len(train_rows), replace=True, p=weights)
        losses = []
        for start in range(0, len(order), args.batch):
            rows = order[start : start + args.batch]
            cand_rows = np.concatenate([data.target[rows], data.negatives[rows].ravel()])
            cand_rows, inverse = np.unique(cand_rows, return_inverse=True)
            labels = inverse[: len(rows)].astype(np.int64)
            mask = (cand_rows[None, :] == data.target[rows][:, None]) & (
                np.arange(len(cand_rows))[None, :] != labels[:, None]
            )
            loss, grad = infonce_grad(
                matrix, data.q[rows], data.pool[cand_rows], labels, mask, args.temperature, symmetric
            )
            w = matrix - np.eye(DIM, dtype=np.float32)
            grad += 2 * args.decay * w
            matrix = opt.update(matrix, grad)
            losses.append(loss)
        figures = evaluate(data, val_rows, matrix, symmetric)
        value = score(figures)
        history.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 4), "val": round(value, 4)})
        print(f"{'symmetric' if symmetric else 'query'} epoch {epoch}: loss {np.mean(losses):.4f} val {value:.4f}")
        if value > best[0] + 1e-4:
            best, patience = (value, matrix.copy(), epoch), 0
        else:
            patience += 1
            if patience >= args.patience:
                break
    return best[1], history, {"best_epoch": best[2], **evaluate(data, val_rows, best[1], symmetric)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-mine", action="store_true", help="reuse train/.data/pairs.jsonl")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--negatives", type=int, default=3, help="hard negatives per pair")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--decay", type=float, default=1e-3, help="weight decay towards the identity")
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--balance", action="store_true", help="sample languages equally, doc pairs twice")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=str(RESULTS), help="where the figures go")
    parser.add_argument("--out", default=str(OUT), help="folder of the adapter weights")
    parser.add_argument("--only", choices=["query", "symmetric"], help="train one adapter")
    args = parser.parse_args()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if not args.skip_mine:
        import mine

        mine.main()
        timings["mine_s"] = round(time.perf_counter() - started, 1)
    t0 = time.perf_counter()
    cache = VectorCache()
    data = load(cache, args.negatives)
    timings["embed_and_negatives_s"] = round(time.perf_counter() - t0, 1)
    held = validation_repos(data, 0.15)
    is_val = np.array([r in held for r in data.repos])
    train_rows = np.flatnonzero(~is_val).astype(np.int64)
    val_rows = np.flatnonzero(is_val).astype(np.int64)
    results: dict[str, object] = {
        "pairs": {"train": len(train_rows), "validation": len(val_rows), "pool_chunks": len(data.pool)},
        "validation_repositories": sorted(held),
        "settings": {k: v for k, v in vars(args).items() if k not in ("skip_mine", "only", "results", "out")},
        "stock": evaluate(data, val_rows, None, False),
        "stock_symmetric_pool": evaluate(data, val_rows, None, True),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("query", "symmetric"):
        if args.only and name != args.only:
            continue
        t0 = time.perf_counter()
        matrix, history, figures = train(data, train_rows, val_rows, name == "symmetric", args)
        np.save(out / f"adapter-{name}.npy", matrix.astype(np.float32))
        timings[f"train_{name}_s"] = round(time.perf_counter() - t0, 1)
        results[name] = {"validation": figures, "history": history}
    timings["total_s"] = round(time.perf_counter() - started, 1)
    results["time"] = timings
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}"
    Path(args.results).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: results[k] for k in results if k not in ("query", "symmetric")}, indent=1))


if __name__ == "__main__":
    main()
