"""Online matrix factorization: River's ``BiasedMF`` / ``FunkMF`` update rule, persistable and cheap per event.

One ``learn_one`` is one step of River's rule (squared loss, plain SGD; a test checks it against River
bit for bit), written directly on numpy vectors: River's dict optimizers and ``defaultdict`` state cost
several times more per event. What a keyed, checkpointed job needs on top:

* **No hidden state.** Latent vectors of new users and items are drawn from a hash of
  ``(seed, role, id)`` instead of one shared random stream, so a restored model initializes newcomers
  exactly as the uninterrupted one would. The only global state is the running mean of targets.
* **Per-id export / import / removal**, so users and items can be persisted and evicted one by one.
* **Read-only scoring.** ``predict_one`` and ``score_items`` never create state for unknown ids.
  Item vectors and biases are rows of one matrix (``item_rows`` maps ids to rows; a removed item's row
  is taken by the last one), so ``score_items`` ranks a candidate pool with one gather and one product.

Two options go beyond River's rule (both off by default; tuned for MovieLens by ``tailor evaluate tune``):

* ``steps``: SGD steps on each rating (still online: the caller predicts before it learns);
* ``lr_decay``: per-id learning rates ``lr / sqrt(1 + lr_decay * n)`` where ``n`` counts the id's past
  updates -- ids with a long history move less. The counts are part of each id's payload, so a restore
  continues exactly.

Targets are explicit ratings (MovieLens) or implicit-feedback weights chosen by the caller.

>>> mf = MatrixFactorization(n_factors=4, seed=1)
>>> for _ in range(20):
...     mf.learn_one("alice", "matrix", 5.0)
...     mf.learn_one("alice", "notebook", 1.0)
>>> round(mf.predict_one("alice", "matrix"), 1), round(mf.predict_one("alice", "notebook"), 1)
(4.7, 1.2)
>>> mf.predict_one("bob", "matrix") > mf.predict_one("bob", "notebook")  # item biases carry over
True
>>> mf.has_user("bob")  # predicting created nothing
False
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from state_schemas.model_update import ItemStep

KINDS = ("biased", "funk")
_TWO_PI = 2.0 * math.pi



class MatrixFactorization:
    def __init__(
        self,
        kind: str = "biased",
        n_factors: int = 10,
        lr_bias: float = 0.025,
        lr_latent: float = 0.05,
        l2_bias: float = 0.0,
        l2_latent: float = 0.0,
        init_sigma: float = 0.1,
        seed: int = 73,
        y_min: float | None = None,
        y_max: float | None = None,
        steps: int = 1,
        lr_decay: float = 0.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"matrix factorization kind must be one of {', '.join(KINDS)}; got {kind!r}")
        if steps < 1:
            raise ValueError(f"matrix factorization steps must be >= 1; got {steps}")
        self.kind = kind
        self.n_factors = n_factors
        self.lr_bias, self.lr_latent = lr_bias, lr_latent
        self.l2_bias, self.l2_latent = l2_bias, l2_latent
        self.init_sigma = init_sigma
        self.seed = seed
        self.y_min, self.y_max = y_min, y_max
        self.steps = steps
        self.lr_decay = lr_decay
        self._biased = kind == "biased"
        self._seed_key = str(seed).encode()
        self.u_latents: dict[str, NDArray[np.float64]] = {}
        self.u_biases: dict[str, float] = {}
        self.item_rows: dict[str, int] = {}
        self._row_items: list[str] = []
        self._item_latents = np.zeros((64, n_factors))
        self._item_biases = np.zeros(64)
        self.u_counts: dict[str, int] = {}
        self.i_counts: dict[str, int] = {}
        self.mean_n = 0.0  # running mean of the targets (River's stats.Mean): BiasedMF's global offset
        self.mean = 0.0

    # -- learning ----------------------------------------------------------------------------------
    def _new_latent(self, role: bytes, key: str) -> NDArray[np.float64]:
        """``n_factors`` normal draws (Box-Muller) from a hash of (seed, role, id): no generator to seed."""
        n = self.n_factors
        raw = hashlib.shake_128(self._seed_key + b"\0" + role + key.encode()).digest(8 * n)
        u = np.frombuffer(raw, dtype="<u4") * 2.0**-32 + 2.0**-33  # uniforms in (0, 1)
        latent: NDArray[np.float64] = np.sqrt(-2.0 * np.log(u[:n])) * np.cos(_TWO_PI * u[n:]) * self.init_sigma
        return latent

    def learn_one(self, user: str, item: str, y: float) -> None:
        """One SGD step (``steps`` steps) on ``y``: ``user_step`` then ``apply_item_step``, bit for bit."""
        self.apply_item_step(item, self.user_step(user, item, y))

    def user_step(self, user: str, item: str, y: float, mean: tuple[float, float] | None = None) -> ItemStep:
        """Learn the user's side of ``(user, item, y)`` and return the item's side, unapplied: a model
        replica that owns the user learns here, and every replica then applies the step
        (``state_schemas.model_update``). ``mean``: the running target mean ``(n, mean)`` to start from
        (default: this model's), for several steps of one interaction before any is applied."""
        u = self.u_latents.get(user)
        if u is None:
            u = self.u_latents[user] = self._new_latent(b"u", user)
        row = self.item_rows.get(item)
        q = self._new_latent(b"i", item) if row is None else self._item_latents[row]
        lr_b, lr_l = self.lr_bias, self.lr_latent
        if self.lr_decay:
            nu, ni = self.u_counts.get(user, 0), self.i_counts.get(item, 0)
            self.u_counts[user] = nu + 1
            du, di = (1.0 + self.lr_decay * nu) ** -0.5, (1.0 + self.lr_decay * ni) ** -0.5
        else:
            du = di = 1.0
        l2_b, l2_l = self.l2_bias, self.l2_latent
        mean_n, mean_y = (self.mean_n, self.mean) if mean is None else mean
        step = ItemStep(y, [], [])
        if self._biased:
            mean_n += 1.0
            mean_y += (1.0 / mean_n) * (y - mean_y)
            bu, bi = self.u_biases.get(user, 0.0), (0.0 if row is None else float(self._item_biases[row]))
        for _ in range(self.steps):
            dot = float(np.dot(u, q))
            pred = mean_y + bu + bi + dot if self._biased else dot  # River's order of additions
            g = 2.0 * (pred - y)
            gu = g * q + l2_l * u  # both gradients from the values before this step, as in River
            gq = g * u + l2_l * q
            u -= (lr_l * du) * gu
            dq = (lr_l * di) * gq
            q = q - dq  # a new array: the replica's row changes only in apply_item_step, by the same operation
            step.latent.append(dq)
            if self._biased:
                bu -= (lr_b * du) * (g + l2_b * bu)
                db = (lr_b * di) * (g + l2_b * bi)
                bi -= db
                step.bias.append(db)
        if self._biased:
            self.u_biases[user] = bu
        step.mean = (mean_n, mean_y)
        return step

    def apply_item_step(self, item: str, step: ItemStep) -> None:
        """Apply the item's side of one interaction (``user_step``): the running mean, then each SGD step's
        change of the item's bias and vector, in order (subtracting a step's change is the operation the
        single-model rule does in place, so applied at once it is bit for bit that rule)."""
        row = self.item_rows.get(item)
        if row is None:
            row = self._add_item(item, self._new_latent(b"i", item), 0.0)
        if self.lr_decay:
            self.i_counts[item] = self.i_counts.get(item, 0) + 1
        if self._biased:
            self.mean_n += 1.0
            self.mean += (1.0 / self.mean_n) * (step.y - self.mean)
            bi = float(self._item_biases[row])
            for db in step.bias:
                bi -= db
            self._item_biases[row] = bi
        q = self._item_latents[row]  # a view: updating it updates the matrix
        for dq in step.latent:
            q -= dq

    def _add_item(self, item: str, latent: Any, bias: float) -> int:
        row = len(self._row_items)
        if row == len(self._item_biases):  # full: double the capacity
            self._item_latents = np.concatenate([self._item_latents, np.zeros_like(self._item_latents)])
            self._item_biases = np.concatenate([self._item_biases, np.zeros_like(self._item_biases)])
        self._item_latents[row] = latent
        self._item_biases[row] = bias
        self.item_rows[item] = row
        self._row_items.append(item)
        return row

    # -- prediction (read-only) ------------------------------------------------------------------------
    @property
    def global_mean(self) -> float:
        return self.mean if self._biased else 0.0

    def has_user(self, user: str) -> bool:
        return user in self.u_latents

    def has_item(self, item: str) -> bool:
        return item in self.item_rows

    def predict_one(self, user: str, item: str) -> float:
        y = self.global_mean
        row = self.item_rows.get(item)
        if self._biased:
            y = y + self.u_biases.get(user, 0.0) + (0.0 if row is None else float(self._item_biases[row]))
        u = self.u_latents.get(user)
        if u is not None and row is not None:
            y += float(np.dot(u, self._item_latents[row]))
        if self.y_min is not None and y < self.y_min:
            return self.y_min
        if self.y_max is not None and y > self.y_max:
            return self.y_max
        return y

    def score_items(self, user: str, items: Sequence[str]) -> NDArray[np.float64]:
        """Unclipped predictions for ``items`` (items the model does not know get ``nan``)."""
        get = self.item_rows.get
        rows = np.fromiter((get(i, -1) for i in items), np.intp, len(items))
        known = rows >= 0
        out = np.full(len(items), np.nan)
        rows = rows[known]
        if not rows.size:
            return out
        scores = np.full(rows.size, self.global_mean)
        if self._biased:
            scores += self.u_biases.get(user, 0.0)
            scores += self._item_biases[rows]
        u = self.u_latents.get(user)
        if u is not None:
            scores += self._item_latents[rows] @ u
        out[known] = scores
        return out

    # -- persistence ---------------------------------------------------------------------------------
    def export_user(self, user: str) -> list[Any] | None:
        """``[bias, [latent...]]`` (``[bias, [latent...], updates]`` with ``lr_decay``), None if unknown."""
        return self._export(self.u_biases, self.u_latents, self.u_counts, user)

    def export_item(self, item: str) -> list[Any] | None:
        row = self.item_rows.get(item)
        if row is None:
            return None
        out = [float(self._item_biases[row]) if self._biased else None, self._item_latents[row].tolist()]
        if self.lr_decay:
            out.append(self.i_counts.get(item, 0))
        return out

    def _export(self, biases: dict[str, float], latents: dict[str, NDArray[np.float64]], counts: dict[str, int],
                key: str) -> list[Any] | None:
        latent = latents.get(key)
        if latent is None:
            return None
        out = [biases.get(key, 0.0) if self._biased else None, latent.tolist()]
        if self.lr_decay:
            out.append(counts.get(key, 0))
        return out

    def import_user(self, user: str, state: Sequence[Any]) -> None:
        self._import(self.u_biases, self.u_latents, self.u_counts, user, state)

    def import_item(self, item: str, state: Sequence[Any]) -> None:
        bias, latent = state[0], state[1]
        self._check_dimension(item, latent)
        row = self.item_rows.get(item)
        if row is None:
            self._add_item(item, latent, 0.0)
        else:
            self._item_latents[row] = latent
        if self._biased and bias is not None:
            self._item_biases[self.item_rows[item]] = float(bias)
        if len(state) > 2 and state[2]:
            self.i_counts[item] = int(state[2])

    def _check_dimension(self, key: str, latent: Sequence[float]) -> None:
        if len(latent) != self.n_factors:
            raise ValueError(f"latent vector of {key!r} has {len(latent)} factors, this model has {self.n_factors}")

    def _import(self, biases: dict[str, float], latents: dict[str, NDArray[np.float64]], counts: dict[str, int],
                key: str, state: Sequence[Any]) -> None:
        bias, latent = state[0], state[1]
        self._check_dimension(key, latent)
        if self._biased and bias is not None:
            biases[key] = float(bias)
        latents[key] = np.asarray(latent, dtype=float)
        if len(state) > 2 and state[2]:
            counts[key] = int(state[2])

    def remove_user(self, user: str) -> None:
        for table in (self.u_latents, self.u_biases, self.u_counts):
            table.pop(user, None)

    def remove_item(self, item: str) -> None:
        self.i_counts.pop(item, None)
        row = self.item_rows.pop(item, None)
        if row is None:
            return
        last = self._row_items.pop()
        if last != item:  # the last row takes the freed one
            self._row_items[row] = last
            self.item_rows[last] = row
            self._item_latents[row] = self._item_latents[len(self._row_items)]
            self._item_biases[row] = self._item_biases[len(self._row_items)]

    def export_globals(self) -> list[float]:
        """``[n, mean]`` of the running target mean (zeros for FunkMF)."""
        if not self._biased:
            return [0.0, 0.0]
        return [self.mean_n, self.mean]

    def import_globals(self, state: Sequence[float]) -> None:
        if self._biased:
            self.mean_n, self.mean = float(state[0]), float(state[1])
