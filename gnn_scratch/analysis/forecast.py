"""Forecasting metrics and the non-learned baselines that make a model's numbers mean something.

Everything works on *windows*: inputs ``x`` (W, L, N) -- L past steps of N nodes -- and targets ``y``
(W, H, N) -- the next H steps. A PyG Temporal snapshot signal is the case H = 1 (``signal_windows``);
T-GCN's Los-loop arrays are already in this form. Every baseline returns predictions shaped like ``y``,
so its metrics are computed by the same functions, on the same targets, as a model's.

Metrics (y_true, y_pred of one shape; means over *all* entries, computed in float64):

    mse  = mean((y - p)^2)      rmse = sqrt(mse)      mae = mean(|y - p|)
    accuracy = 1 - ||y - p||_F / ||y||_F            (T-GCN's "Accuracy")
    r2       = 1 - sum((y - p)^2) / sum((y - mean(y))^2)   (T-GCN's "R2", one global mean)
    explained_variance = 1 - var(y - p) / var(y)     (T-GCN's "Var", population variances)

How T-GCN computes them (lehaifeng/T-GCN, the TensorFlow main.py ``evaluation`` and
Baselines/baselines.py): test targets (W, pre_len, N) are reshaped to (W * pre_len, N) and compared with
the predictions of the same shape, ``sqrt(sklearn.mean_squared_error(a, b))`` -- whose average over the N
columns of equally long columns is the mean over all entries -- so a "15 / 30 / 45 / 60 min" RMSE is the
RMSE over *all* pre_len = 3 / 6 / 9 / 12 predicted steps of every test window and node, not over the last
step. RMSE and MAE are computed on the scaled data and multiplied by max_value; here the predictions and
targets are multiplied by ``scale`` first (the same number up to float rounding). accuracy, r2 and
explained_variance do not change under scaling. T-GCN's PyTorch port computes r2 with the mean of the
*predictions* and an unbiased variance in "ExplainedVar"; the TensorFlow code (the paper's) is followed here.

Baselines, all fitted on the training windows / training stretch only:

* ``last_value``: every future step = the last input step, x[:, -1] (persistence).
* ``historical_mean``: every future step = the node's mean over the training series.
* ``window_mean``: T-GCN's "HA" (Baselines/baselines.py): step 1 = the mean of the L inputs, then the
  window slides over its own prediction (drop the oldest, append the mean) for each further step.
* ``fit_autoregression`` -> ``LinearAutoregression``: y[w, h, n] = b_h + sum_l a_{l,h} x[w, l, n], least
  squares (``numpy.linalg.lstsq``) with an intercept, either one model per node (``shared=False``: a and b
  indexed by n too) or one shared by all nodes. Multi-step outputs use the *direct* strategy -- one set
  of coefficients per output step h, fitted to that step's targets -- not an iterated one-step model; for
  H = 1 the two are the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BASELINES = ("last_value", "historical_mean", "window_mean", "ar_per_node", "ar_shared")
METRICS = ("mse", "rmse", "mae", "accuracy", "r2", "explained_variance")


# =============================================================================== checks
def _float_array(a, name, ndim=None):
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} must be finite; entry {idx} is {arr[idx]}")
    return arr.astype(np.float64, copy=False)


def _pair(y_true, y_pred):
    a = _float_array(y_true, "y_true")
    b = _float_array(y_pred, "y_pred")
    if a.shape != b.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def _windows(x, name="x"):
    return _float_array(x, name, ndim=3)


def _horizon(horizon):
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
    return int(horizon)


# =============================================================================== metrics
def mse(y_true, y_pred) -> float:
    """Mean squared error over all entries. y_true, y_pred: arrays of one shape, finite."""
    a, b = _pair(y_true, y_pred)
    return float(np.mean((a - b) ** 2))


def rmse(y_true, y_pred) -> float:
    """sqrt(mse): T-GCN's RMSE (the root of the mean over all entries, not a mean of per-node roots)."""
    return float(np.sqrt(mse(y_true, y_pred)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error over all entries."""
    a, b = _pair(y_true, y_pred)
    return float(np.mean(np.abs(a - b)))


def accuracy(y_true, y_pred) -> float:
    """T-GCN's accuracy, 1 - ||y - p||_F / ||y||_F (Frobenius norms over all entries).
    Raises ValueError when y_true is all zeros (the ratio is undefined)."""
    a, b = _pair(y_true, y_pred)
    den = np.linalg.norm(a.ravel())
    if den == 0:
        raise ValueError("accuracy is undefined when y_true is all zeros")
    return float(1.0 - np.linalg.norm((a - b).ravel()) / den)


def r2(y_true, y_pred) -> float:
    """T-GCN's R2, 1 - sum((y - p)^2) / sum((y - mean(y))^2) with one mean over all entries.
    Raises ValueError when y_true is constant."""
    a, b = _pair(y_true, y_pred)
    den = np.sum((a - a.mean()) ** 2)
    if den == 0:
        raise ValueError("r2 is undefined when y_true is constant")
    return float(1.0 - np.sum((a - b) ** 2) / den)


def explained_variance(y_true, y_pred) -> float:
    """T-GCN's "var", 1 - var(y - p) / var(y) (population variances over all entries).
    Raises ValueError when y_true is constant."""
    a, b = _pair(y_true, y_pred)
    den = np.var(a)
    if den == 0:
        raise ValueError("explained_variance is undefined when y_true is constant")
    return float(1.0 - np.var(a - b) / den)


def forecast_metrics(y_true, y_pred, scale: float = 1.0) -> dict:
    """All of ``METRICS`` for one prediction, after multiplying both arrays by ``scale`` (T-GCN: the
    series maximum, so RMSE / MAE come out in mph). Metrics that are undefined for y_true (constant or
    all zeros) are NaN here rather than an error, so a table can still be printed."""
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    a, b = _pair(y_true, y_pred)
    a, b = a * scale, b * scale
    out = {}
    for name, fn in (("mse", mse), ("rmse", rmse), ("mae", mae), ("accuracy", accuracy), ("r2", r2),
                     ("explained_variance", explained_variance)):
        try:
            out[name] = fn(a, b)
        except ValueError:
            out[name] = float("nan")
    return out


# =============================================================================== windows from snapshots
def signal_windows(signal):
    """A PyG Temporal snapshot signal (``gnn_scratch.data.temporal.TemporalSignal``: features (S, N, lags),
    targets (S, N)) as windows: x (S, lags, N) with x[s] = features[s].T, y (S, 1, N) with y[s, 0] =
    targets[s]. float64 copies."""
    X = _float_array(signal.features, "signal.features", ndim=3)
    Y = _float_array(signal.targets, "signal.targets", ndim=2)
    if Y.shape != (X.shape[0], X.shape[1]):
        raise ValueError(f"targets must have shape {(X.shape[0], X.shape[1])} to match features {X.shape}, "
                         f"got {Y.shape}")
    return np.ascontiguousarray(X.transpose(0, 2, 1)), Y[:, None, :].copy()


# =============================================================================== baselines
def last_value(x, horizon: int = 1) -> np.ndarray:
    """Persistence: (W, horizon, N) with every step = x[:, -1, :], the last input step.
    x: (W, L, N)."""
    X = _windows(x)
    H = _horizon(horizon)
    return np.repeat(X[:, -1:, :], H, axis=1)


def historical_mean(train_series, x, horizon: int = 1) -> np.ndarray:
    """The per-node mean of the training series for every window and step: (W, horizon, N).
    train_series: (T_train, N), the stretch of the series the training split covers (never the test
    stretch); x: (W, L, N), used only for W and N."""
    S = _float_array(train_series, "train_series", ndim=2)
    X = _windows(x)
    H = _horizon(horizon)
    if S.shape[1] != X.shape[2]:
        raise ValueError(f"train_series has {S.shape[1]} nodes, x has {X.shape[2]}")
    mu = S.mean(axis=0)
    return np.broadcast_to(mu, (X.shape[0], H, X.shape[2])).copy()


def window_mean(x, horizon: int = 1) -> np.ndarray:
    """T-GCN's "HA" baseline (lehaifeng/T-GCN, Baselines/baselines.py): step 1 = the mean over the L input
    steps; for each further step the window drops its oldest step and appends the previous prediction,
    and the mean is taken again. (W, horizon, N) from x (W, L, N)."""
    X = _windows(x)
    H = _horizon(horizon)
    win = X.copy()
    out = np.empty((X.shape[0], H, X.shape[2]))
    for h in range(H):
        out[:, h] = win.mean(axis=1)
        win = np.concatenate([win[:, 1:], out[:, h:h + 1]], axis=1)
    return out


@dataclass(eq=False)
class LinearAutoregression:
    """A fitted linear autoregression on the L lags, direct multi-step (one model per output step).

    shared=False: coef (N, L, H), intercept (N, H):  p[w, h, n] = intercept[n, h] + sum_l x[w, l, n] coef[n, l, h]
    shared=True:  coef (L, H),    intercept (H,):    p[w, h, n] = intercept[h]    + sum_l x[w, l, n] coef[l, h]
    coef[..., l, :] multiplies input step l (l = L-1 is the most recent).
    """

    coef: np.ndarray
    intercept: np.ndarray
    shared: bool

    @property
    def lags(self) -> int:
        return int(self.coef.shape[-2])

    @property
    def horizon(self) -> int:
        return int(self.coef.shape[-1])

    def predict(self, x) -> np.ndarray:
        """(W, H, N) predictions for windows x (W, L, N) (L and, per node, N as fitted)."""
        X = _windows(x)
        if X.shape[1] != self.lags:
            raise ValueError(f"x must have {self.lags} input steps (the fitted lags), got shape {X.shape}")
        if self.shared:
            return np.einsum("wln,lh->whn", X, self.coef) + self.intercept[None, :, None]
        if X.shape[2] != self.coef.shape[0]:
            raise ValueError(f"x has {X.shape[2]} nodes, the per-node model was fitted on {self.coef.shape[0]}")
        return np.einsum("wln,nlh->whn", X, self.coef) + self.intercept.T[None]


def fit_autoregression(x, y, shared: bool = False) -> LinearAutoregression:
    """Least-squares fit (``numpy.linalg.lstsq``, minimum-norm where the design is rank deficient) of a
    linear autoregression with intercept on training windows x (W, L, N) -> y (W, H, N); see
    ``LinearAutoregression``. Per node (shared=False): N separate regressions of W rows and L + 1
    unknowns; shared: one regression over all W * N (window, node) rows. Fit it on the training split only.
    """
    X = _windows(x)
    Y = _windows(y, "y")
    if Y.shape[0] != X.shape[0] or Y.shape[2] != X.shape[2]:
        raise ValueError(f"x (W, L, N) and y (W, H, N) must agree in W and N, got {X.shape} and {Y.shape}")
    W, L, N = X.shape
    H = Y.shape[1]
    if shared:
        A = np.concatenate([np.ones((W * N, 1)), X.transpose(0, 2, 1).reshape(W * N, L)], axis=1)
        B = Y.transpose(0, 2, 1).reshape(W * N, H)
        sol = np.linalg.lstsq(A, B, rcond=None)[0]                   # (L + 1, H)
        return LinearAutoregression(coef=sol[1:], intercept=sol[0], shared=True)
    coef = np.empty((N, L, H))
    intercept = np.empty((N, H))
    ones = np.ones((W, 1))
    for n in range(N):
        sol = np.linalg.lstsq(np.concatenate([ones, X[:, :, n]], axis=1), Y[:, :, n], rcond=None)[0]
        intercept[n], coef[n] = sol[0], sol[1:]
    return LinearAutoregression(coef=coef, intercept=intercept, shared=False)


def baseline_forecasts(train_x, train_y, test_x, train_series) -> dict:
    """{name: (W_test, H, N) predictions} for every baseline of ``BASELINES``, fitted on the training
    windows (train_x (W, L, N) -> train_y (W, H, N)) and training series (T_train, N) only, applied to
    test_x (W_test, L, N). H is train_y's."""
    H = _windows(train_y, "train_y").shape[1]
    return {
        "last_value": last_value(test_x, H),
        "historical_mean": historical_mean(train_series, test_x, H),
        "window_mean": window_mean(test_x, H),
        "ar_per_node": fit_autoregression(train_x, train_y, shared=False).predict(test_x),
        "ar_shared": fit_autoregression(train_x, train_y, shared=True).predict(test_x),
    }


def evaluate_baselines(train_x, train_y, test_x, test_y, train_series, scale: float = 1.0) -> dict:
    """{baseline name: ``forecast_metrics`` on the test windows} (see ``baseline_forecasts``).
    scale: multiply predictions and targets before the metrics (Los-loop: ``WindowedSignal.scale``, mph)."""
    preds = baseline_forecasts(train_x, train_y, test_x, train_series)
    Yt = _windows(test_y, "test_y")
    return {name: forecast_metrics(Yt, p, scale) for name, p in preds.items()}
