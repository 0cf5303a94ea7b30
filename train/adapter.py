"""A linear adapter over the frozen model's vectors, trained with InfoNCE in plain numpy.

The map is ``f(x) = normalise(A x)`` with ``A = I + W`` (initialised at the identity, weight decay pulls
``W`` towards zero). ``query`` applies it to queries only (stored document vectors stay valid);
``symmetric`` applies it to queries and documents alike.

Loss, per batch of B pairs: candidates are the batch's targets and their mined hard negatives; the
logits ``s_ij = f(q_i) . g(c_j) / t`` (``g`` = identity or ``f``), the loss the mean over i of
``logsumexp_j s_ij - s_i,y(i)`` (a candidate equal to query i's own target elsewhere in the batch is
masked out), plus ``decay * |W|^2``. Gradients are written out below (softmax cross-entropy, through the
L2 normalisation, through the linear map); Adam updates ``W``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def apply(matrix: F32, x: F32) -> F32:
    """Rows of ``x`` mapped by ``matrix`` and L2-normalised."""
    u = x @ matrix.T
    out: F32 = (u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    return out


def _forward(matrix: F32, x: F32) -> tuple[F32, F32]:
    u = x @ matrix.T
    norm = np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12).astype(np.float32)
    return (u / norm).astype(np.float32), norm


def _back_normalise(grad_f: F32, f: F32, norm: F32) -> F32:
    """dL/du for f = u / |u|: (g - f (f . g)) / |u|."""
    out: F32 = ((grad_f - f * np.sum(f * grad_f, axis=1, keepdims=True)) / norm).astype(np.float32)
    return out


def infonce_grad(
    matrix: F32, q: F32, c: F32, labels: I64, mask: npt.NDArray[np.bool_], temperature: float, symmetric: bool
) -> tuple[float, F32]:
    """Mean InfoNCE loss of the batch and its gradient with respect to ``matrix``.

    ``q``: (B, d) query vectors; ``c``: (C, d) candidate vectors; ``labels[i]``: the column of query i's
    target; ``mask[i, j]``: True where column j must not count for query i."""
    fq, nq = _forward(matrix, q)
    if symmetric:
        fc, nc = _forward(matrix, c)
    else:
        fc, nc = c, np.ones((len(c), 1), np.float32)
    logits = (fq @ fc.T) / temperature
    logits = np.where(mask, -1e9, logits)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(q))
    loss = float(-np.mean(np.log(np.maximum(p[rows, labels], 1e-30))))
    ds = p
    ds[rows, labels] -= 1.0
    ds /= len(q) * temperature  # dL/d(fq . fc)
    grad_fq = ds @ fc
    grad = _back_normalise(grad_fq.astype(np.float32), fq, nq).T @ q
    if symmetric:
        grad_fc = ds.T @ fq
        grad += _back_normalise(grad_fc.astype(np.float32), fc, nc).T @ c
    return loss, grad.astype(np.float32)


@dataclass
class Adam:
    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    step: int = 0
    m: F32 = field(default_factory=lambda: np.zeros(0, np.float32))
    v: F32 = field(default_factory=lambda: np.zeros(0, np.float32))

    def update(self, w: F32, grad: F32) -> F32:
        if self.m.shape != w.shape:
            self.m, self.v = np.zeros_like(w), np.zeros_like(w)
        self.step += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        m_hat = self.m / (1 - self.beta1**self.step)
        v_hat = self.v / (1 - self.beta2**self.step)
        out: F32 = (w - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(np.float32)
        return out
