"""Hyper-parameter search by replay: random search over a grid, each trial a full test-then-learn replay.

``--dataset movielens`` tunes the matrix factorization (``recommendations.mf``) for RMSE;
``--dataset taobao`` tunes the blend and feedback settings for next-interaction Recall@10 (use
``--limit`` to keep trials short). Trials are drawn without replacement from the grid with a fixed seed,
so a search is reproducible; the best settings are printed as a YAML fragment for ``config/models.yaml``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
from typing import Any

import yaml

from evaluation import RESULTS_DIR, movielens, taobao
from evaluation.plots import line_plot
from evaluation.replay_metrics import markdown_table, print_table, write_results
from settings import PROJECT_ROOT, Settings
from settings.progress import progress_bar

HELP = "hyper-parameter search by replay (MovieLens RMSE or Taobao Recall@10); prints the best settings"

GRIDS: dict[str, dict[str, list[Any]]] = {
    "movielens": {
        "mf.n_factors": [10, 20, 40, 80],
        "mf.lr_bias": [0.005, 0.01, 0.025, 0.05],
        "mf.lr_latent": [0.02, 0.05, 0.07, 0.1],
        "mf.l2_bias": [0.0, 0.01, 0.02, 0.05],
        "mf.l2_latent": [0.0, 0.02, 0.05, 0.1, 0.15],
        "mf.init_sigma": [0.05, 0.1],
        "mf.steps": [1, 2, 3],
        "mf.lr_decay": [0.0, 0.01, 0.05, 0.2],
    },
    "taobao": {
        "blend.mf": [0.0, 0.25, 0.5],
        "blend.content": [0.5, 1.0],
        "blend.recent": [0.5, 1.0, 2.0],
        "blend.popular": [0.25, 0.5, 1.0],
        "blend.covisit": [0.0, 0.5, 1.0, 2.0],
        "mf.feedback": ["negative_sampling", "positive_only"],
        "half_life_ms": [1_800_000, 3_600_000, 21_600_000],
    },
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=sorted(GRIDS), default="movielens", help="what to tune on")
    parser.add_argument("--trials", type=int, default=16, help="random trials drawn from the grid")
    parser.add_argument("--seed", type=int, default=7, help="seed of the trial draw")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N events/ratings per trial")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        head, _, sub = key.partition(".")
        if sub:
            out.setdefault(head, {})[sub] = value
        else:
            out[key] = value
    return out


def run(args: argparse.Namespace, settings: Settings) -> int:
    grid = GRIDS[args.dataset]
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    trials = random.Random(args.seed).sample(combos, min(args.trials, len(combos)))
    base = movielens.movielens_section(settings) if args.dataset == "movielens" else taobao.models_section(settings)
    ratings = movielens.read_ratings(limit=args.limit) if args.dataset == "movielens" else None
    bar = progress_bar(len(trials), f"tune {args.dataset}", "trials", enabled=False if args.quiet else None)
    results = []
    for trial in trials:
        config = taobao.config_with(base, [f"{k}={v}" for k, v in trial.items()])
        if ratings is not None:
            r = movielens.replay(ratings, movielens.mf_params(config))
            # a diverging trial (too large a learning rate) ends in inf / nan: rank it last
            score, extra = (r["rmse"] if math.isfinite(r["rmse"]) else math.inf), {"MAE": r["mae"]}
        else:
            r = taobao.replay(config, limit=args.limit, segments=False)
            score, extra = r["hybrid"]["all"]["recall@10"], {"pop R@10": r["popular"]["all"]["recall@10"]}
        results.append({"params": trial, "score": score, **extra})
        best = min(results, key=lambda x: x["score"]) if ratings is not None else max(results, key=lambda x: x["score"])
        bar.set_postfix_str(f"best {best['score']:.4f}", refresh=False)
        bar.update()
    bar.close()
    metric = "RMSE" if ratings is not None else "Recall@10"
    results.sort(key=lambda x: x["score"], reverse=ratings is None)
    headers = [*grid, metric, *(k for k in results[0] if k not in ("params", "score"))]
    rows = [[*r["params"].values(), r["score"], *(v for k, v in r.items() if k not in ("params", "score"))]
            for r in results]
    print_table(headers, rows)
    best = results[0]
    fragment = yaml.safe_dump({"recommendations": _nest(best["params"])}, sort_keys=False)
    print(f"\nbest {metric} {best['score']:.4f} with:\n{fragment}")
    name = f"tune-{args.dataset}"
    paths = write_results(name, {"dataset": args.dataset, "metric": metric, "limit": args.limit, "trials": results},
                          markdown_table(headers, rows) + f"\n\nbest:\n```yaml\n{fragment}```")
    ranks = list(range(1, len(rows) + 1))
    paths.append(line_plot(RESULTS_DIR / f"{name}.png", f"tune {args.dataset}: {metric} by trial (sorted)",
                           "trial rank", metric, {metric: (ranks, [r["score"] for r in results])}))
    print("wrote " + ", ".join(str(p.relative_to(PROJECT_ROOT)) for p in paths))
    return 0
