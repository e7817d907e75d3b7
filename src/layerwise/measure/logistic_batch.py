"""Many small L2-penalised binary logistic regressions fitted together (one batched Newton solve in torch).

The probes fit thousands of logistic regressions on a few hundred sentences each (retrainings x label sets
x layers, MDL blocks x subsamples x C). One at a time, scikit-learn's per-fit overhead dominates; here every
problem of a batch is solved at once. The model and objective are scikit-learn's
``StandardScaler`` + ``LogisticRegression(C)`` (binary): z = (x - mu) / sigma with the mean and (biased)
standard deviation of the training rows (a constant feature keeps sigma = 1), p(y = 1 | z) = sigmoid(w.z + b),

    J(w, b) = sum_i c_i [ -t_i log p_i - (1 - t_i) log(1 - p_i) ] + |w|^2 / (2C)        (b not penalised),

c_i the row's multiplicity (a bootstrap resample holding a sentence twice counts it twice; 0 pads a batch).
With n training rows in d > n dimensions the minimiser w lies in the span of the rows (representer theorem,
Kimeldorf & Wahba 1971), w = Z^T a, so the problem is solved in the n-dimensional dual: scores f = K a with
the Gram matrix K = Z Z^T. The intercept is a constant feature of value s (K + s^2): its penalty
b^2 / (2 C s^2) with s^2 = 1e6 / C is b^2 / 2e6, which changes b by a relative ~1e-7 (liblinear's
``intercept_scaling``; s^2 scaled with 1 / C keeps the Newton systems' conditioning alike for every C).
Newton's method (IRLS, Hastie, Tibshirani & Friedman 2009, ESL 4.4.1) in the span: the step delta solves
(I + C W K) delta = -(C g + a), W = diag(c p (1 - p)), g = c (p - t), through the symmetric positive definite
M = I + C W^(1/2) K W^(1/2) (push-through identity), with a step halving line search on J; it stops when
half the largest squared Newton decrement of the batch (about J - J_min) is below ``tol`` (1e-6). The
known-answer tests compare coefficients and predictions with scikit-learn's on small cases (``tests/test_logistic_batch.py``).
"""

from __future__ import annotations

import numpy as np

S2 = 1e6           # squared intercept feature (see the module docstring)
_STEPS = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125)


def _torch():
    import torch

    return torch


def weighted_scaler(X, c):
    """Weighted mean and standard deviation of the rows of ``X`` [B, n, d] with weights ``c`` [B, n]
    (scikit-learn's ``StandardScaler`` on the rows repeated c times); a feature whose variance is at
    rounding level (``var <= 1e-10 * mean^2 + 1e-300``, constant in float64) keeps the scale 1."""
    torch = _torch()
    tot = c.sum(dim=1, keepdim=True)[..., None]
    mu = (c[..., None] * X).sum(dim=1, keepdim=True) / tot
    var = (c[..., None] * (X - mu) ** 2).sum(dim=1, keepdim=True) / tot
    const = var <= 1e-10 * mu ** 2 + 1e-300
    sigma = torch.where(const, torch.ones_like(var), var.sqrt())
    return mu, sigma


def _objective(f, a_Ka, t, c, C):
    """J per problem from the scores f (intercept included) and a^T K a (the penalty's)."""
    torch = _torch()
    loss = torch.nn.functional.softplus(f) - t * f                 # -t log p - (1-t) log(1-p)
    return (c * loss).sum(dim=-1) + a_Ka / (2 * C)


def newton_dual(K, t, c, C, *, max_iter: int = 100, tol: float = 1e-6):
    """Dual coefficients ``a`` [B, n] of the batched problem (module docstring): ``K`` [B, n, n] the Gram
    matrix of the standardised training rows WITHOUT the intercept feature, ``t`` [B, n] targets in {0, 1},
    ``c`` [B, n] row weights (0: padding), ``C`` [B] inverse penalties. Scores of new rows with Gram
    ``Kte`` [B, m, n] (test x train): ``(Kte + S2 / C) @ a``."""
    torch = _torch()
    Ka = K + (S2 / C)[:, None, None]
    B, n = t.shape
    a = torch.zeros_like(t)
    f = torch.zeros_like(t)
    Cb = C[:, None]
    eye = torch.eye(n, dtype=K.dtype)
    J = _objective(f, (a * f).sum(1), t, c, C)
    steps = torch.tensor(_STEPS, dtype=K.dtype)
    for _ in range(max_iter):
        p = torch.sigmoid(f)
        g = c * (p - t)
        w = (c * p * (1 - p)).clamp_min(0).sqrt()
        r = -(Cb * g + a)
        # (I + C W K)^-1 r = r - C W^1/2 M^-1 W^1/2 K r,  M = I + C W^1/2 K W^1/2
        M = eye + Cb[..., None] * w[:, :, None] * Ka * w[:, None, :]
        Kr = (Ka @ r[..., None])[..., 0]
        L = torch.linalg.cholesky_ex(M)[0]
        sol = torch.cholesky_solve((w * Kr)[..., None], L)[..., 0]
        delta = r - Cb * w * sol
        df = (Ka @ delta[..., None])[..., 0]
        decrement = -((g + a / Cb) * df).sum(1) / 2               # lambda^2 / 2 ~ J - J_min near the optimum
        # objective at each step length (f and a^T K a are quadratic/linear in the step)
        aKa, aKd, dKd = (a * f).sum(1), (a * df).sum(1), (delta * df).sum(1)
        fs = f[:, None, :] + steps[None, :, None] * df[:, None, :]
        quad = aKa[:, None] + 2 * steps * aKd[:, None] + steps ** 2 * dKd[:, None]
        Js = _objective(fs, quad, t[:, None, :], c[:, None, :], C[:, None])
        best = Js.argmin(dim=1)
        Jb = Js.gather(1, best[:, None])[:, 0]
        ok = Jb < J
        step = torch.where(ok, steps[best], torch.zeros_like(Jb))
        a = a + step[:, None] * delta
        f = f + step[:, None] * df
        J = torch.where(ok, Jb, J)
        if float(decrement.max()) < tol or not bool(ok.any()):
            break
    return a


def _tensors(*arrays):
    torch = _torch()
    return [torch.as_tensor(np.array(v, dtype=np.float64, copy=None)) for v in arrays]


def _standardised(Xtr, c, standardise: bool):
    """Standardised training rows (padding rows zeroed) and the scaler ``(mu, sigma)``."""
    mu, sigma = weighted_scaler(Xtr, c) if standardise else (0.0, 1.0)
    return (Xtr - mu) / sigma * (c[..., None] > 0), mu, sigma


def fit_scores(Xtr, c, t, Xte, C, standardise: bool = True):
    """Batched scaler (``standardise=False``: none) + logistic regression. ``Xtr`` [B, n, d] training rows
    (padding: weight 0), ``c`` [B, n] weights, ``t`` [B, n] or [B, T, n] 0/1 targets (T target sets per
    design), ``Xte`` [B, m, d] (or [1, m, d]) rows to score, ``C`` [G] a grid of inverse penalties, each
    fitted on every problem (the scaler and Gram matrix of a design are shared). Returns the decision
    values w.z + b of the ``Xte`` rows [B, G, m] ([B, T, G, m] with target sets; float64 numpy): class 1
    where > 0."""
    Xtr, c, t, Xte, C = _tensors(Xtr, c, t, Xte, np.atleast_1d(C))
    sets = t.dim() == 3
    t = t if sets else t[:, None, :]
    Z, mu, sigma = _standardised(Xtr, c, standardise)
    B, T, G = t.shape[0], t.shape[1], C.numel()
    K = Z @ Z.transpose(1, 2)
    rep = T * G
    a = newton_dual(K.repeat_interleave(rep, 0), t.repeat_interleave(G, 1).reshape(B * rep, -1),
                    c.repeat_interleave(rep, 0), C.repeat(B * T)).reshape(B, rep, -1)
    w = a @ Z                                                        # [B, T G, d]: w = Z^T a
    b = S2 / C.repeat(T) * a.sum(-1)                                # intercepts [B, T G]
    f = ((Xte - mu) / sigma @ w.transpose(1, 2) + b[:, None, :]).transpose(1, 2)
    f = f.reshape(B, T, G, -1).numpy()
    return f if sets else f[:, 0]


def coefficients(Xtr, c, t, C):
    """(w, b) in the standardised space of one C for every problem (the known-answer tests)."""
    Xtr, c, t, C = _tensors(Xtr, c, t, np.atleast_1d(C))
    Z, _, _ = _standardised(Xtr, c, True)
    a = newton_dual(Z @ Z.transpose(1, 2), t, c, C.expand(t.shape[0]))
    return (Z.transpose(1, 2) @ a[..., None])[..., 0].numpy(), (S2 / C * a.sum(1)).numpy()


def pack(rows: list[np.ndarray], X: np.ndarray, targets: list[np.ndarray]):
    """Padded batch of problems: problem p trains on ``X[rows[p]]`` (repeated rows counted, as weights)
    with targets ``targets[p]`` (aligned with ``rows[p]``). Returns ``(Xb [B, n, d], c [B, n], t [B, n])``
    with n the largest number of distinct rows."""
    uniq = [np.unique(r, return_index=True, return_counts=True) for r in rows]
    n = max(u[0].size for u in uniq)
    B, d = len(rows), X.shape[1]
    Xb, c, t = np.zeros((B, n, d)), np.zeros((B, n)), np.zeros((B, n))
    for p, ((u, first, counts), tp) in enumerate(zip(uniq, targets)):
        Xb[p, :u.size], c[p, :u.size], t[p, :u.size] = X[u], counts, np.asarray(tp)[first]
    return Xb, c, t
