"""The sampling head's definition (docs/contracts.md §1) in numpy, float64: what every backend's
head must compute, for the tests that compare them."""
from __future__ import annotations

import numpy as np


def reference_head(z, k=1, mask_ids=None, temperature=1.0, top_p=1.0, min_p=0.0, top_k=0, penalty=1.0,
                   penalized=(), draw=-1.0):
    """-> dict(ids, logits (descending, at least k; the whole nucleus when top_p < 1), logsumexp,
    lse_allowed, lse_t, lse_kept, tail (token or -1))."""
    z = np.asarray(z, np.float64)
    V = len(z)
    s = z.copy()
    for t in set(penalized):
        s[t] = s[t] / penalty if s[t] > 0 else s[t] * penalty
    allowed = np.zeros(V, bool)
    if mask_ids is None:
        allowed[:] = True
    else:
        allowed[list(mask_ids)] = True
    s[~allowed] = -np.inf
    order = sorted(np.flatnonzero(allowed), key=lambda i: (-s[i], i))
    st = s / temperature
    m = st[order[0]]
    w = np.where(allowed, np.exp(st - m), 0.0)
    total = w.sum()
    n = k
    if top_p < 1:
        cum = 0.0
        for j, i in enumerate(order):
            if cum >= top_p * total:
                n = max(n, j)
                break
            cum += w[i]
        else:
            n = max(n, len(order))
    ids = order[:min(n, len(order))]
    kept = np.where(w >= max(min_p, 1e-38), w, 0.0)
    lse = lambda x: float(np.log(np.sum(np.exp(x - x.max()))) + x.max())
    tail = -1
    if top_p >= 1 and top_k <= 0 and draw >= 0:
        rest = draw * kept.sum() - sum(kept[i] for i in ids)
        if rest >= 0:
            inc = set(ids)
            for i in range(V):
                if kept[i] > 0 and i not in inc:
                    rest -= kept[i]
                    tail = i
                    if rest < 0:
                        break
    return dict(ids=list(ids), logits=[s[i] for i in ids], logsumexp=lse(z), lse_allowed=lse(s[allowed]),
                lse_t=float(m + np.log(total)), lse_kept=float(m + np.log(kept.sum())), tail=tail)
