"""MovieLens-100K: RMSE and MAE of the matrix-factorization operator, test-then-learn in timestamp order.

Each rating is first predicted (clipped to 1..5), then learned, in timestamp order (ties keep file order).
Rows: River's own ``BiasedMF`` with the tutorial's parameters (the published anchor, RMSE 0.9479 on
River's copy of the file), the Tailor operator with those parameters (``operators.matrix_factorization``,
id-seeded initialization, so the numbers differ in the 4th decimal), and the operator with the
``recommendations.mf`` settings of ``config/models.yaml`` overridden by its ``movielens.mf`` block.

The ``movielens:`` block is read only here (and by ``tailor evaluate tune --dataset movielens``): explicit
1-5 ratings want other settings (more factors, several SGD steps per rating, per-id learning-rate
decay) than the implicit feedback the job learns from, which ``recommendations.mf`` is tuned for.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from evaluation import RESULTS_DIR
from evaluation.plots import line_plot
from evaluation.replay_metrics import RatingErrors, markdown_table, print_table, write_results
from evaluation.taobao import config_with
from operators.matrix_factorization import MatrixFactorization
from operators.models_config import ModelsConfig, merge_sections
from settings import PROJECT_ROOT, Settings
from settings.progress import progress_bar

HELP = "MovieLens-100K: RMSE / MAE of online matrix factorization (anchor: River BiasedMF 0.9479)"
DATA = PROJECT_ROOT.parent / "shared" / "data" / "movielens-100k"
TUTORIAL = {"kind": "biased", "n_factors": 10, "lr_bias": 0.025, "lr_latent": 0.05, "l2_bias": 0.0,
            "l2_latent": 0.0, "init_sigma": 0.1, "seed": 73, "steps": 1, "lr_decay": 0.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DATA, help="MovieLens-100K directory (u.data)")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N ratings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recommendations setting, e.g. --set mf.lr_latent=0.03")
    parser.add_argument("--no-river", action="store_true", help="skip the plain-River anchor row")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def read_ratings(directory: Path = DATA, limit: int | None = None) -> list[tuple[str, str, float, int]]:
    rows = []
    with open(Path(directory) / "u.data", encoding="latin-1") as lines:
        for line in lines:
            user, item, rating, ts = line.split("\t")
            rows.append((user, item, float(rating), int(ts)))
    rows.sort(key=lambda r: r[3])
    return rows[:limit] if limit else rows


def movielens_section(settings: Settings) -> dict[str, Any]:
    """``recommendations`` of models.yaml with its ``movielens`` block merged over it (section by section)."""
    models = ModelsConfig.from_yaml(settings.models_file)
    return merge_sections(models.section("recommendations"), models.section("movielens"))


def mf_params(config: Any) -> dict[str, Any]:
    return {name: getattr(config, "mf_" + name) for name in TUTORIAL}


def replay(ratings: list[tuple[str, str, float, int]], params: dict[str, Any], label: str = "", quiet: bool = True,
           curve_every: int = 1000) -> dict[str, Any]:
    """Test-then-learn with the Tailor operator; RMSE/MAE, a running-RMSE curve and µs per rating."""
    mf = MatrixFactorization(**params, y_min=1.0, y_max=5.0)
    errors, curve = RatingErrors(), []
    bar = progress_bar(len(ratings), f"movielens {label}", "ratings", enabled=False if quiet else None)
    start = time.perf_counter()
    for n, (user, item, rating, _) in enumerate(ratings, start=1):
        errors.update(mf.predict_one(user, item), rating)
        mf.learn_one(user, item, rating)
        if n % curve_every == 0:
            curve.append((n, errors.rmse))
            bar.set_postfix_str(f"RMSE {errors.rmse:.4f}", refresh=False)
            bar.update(n - bar.n)
    bar.update(len(ratings) - bar.n)
    bar.close()
    us = 1e6 * (time.perf_counter() - start) / max(1, len(ratings))
    return {"rmse": errors.rmse, "mae": errors.mae, "ratings": errors.n, "us_per_rating": us, "curve": curve}


def replay_river(ratings: list[tuple[str, str, float, int]], quiet: bool = True) -> dict[str, Any]:
    """River's BiasedMF exactly as in its tutorial (PredClipper 1..5, Normal(seed=73) stream)."""
    from river import optim, preprocessing, reco

    model = preprocessing.PredClipper(
        regressor=reco.BiasedMF(
            n_factors=10, bias_optimizer=optim.SGD(0.025), latent_optimizer=optim.SGD(0.05),
            weight_initializer=optim.initializers.Zeros(),
            latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=73), l2_bias=0.0, l2_latent=0.0,
        ),
        y_min=1, y_max=5,
    )
    errors, curve = RatingErrors(), []
    bar = progress_bar(len(ratings), "movielens river", "ratings", enabled=False if quiet else None)
    start = time.perf_counter()
    for n, (user, item, rating, _) in enumerate(ratings, start=1):
        x = {"user": user, "item": item}
        errors.update(model.predict_one(x, **x), rating)
        model.learn_one(x, rating, **x)
        if n % 1000 == 0:
            curve.append((n, errors.rmse))
            bar.update(n - bar.n)
    bar.update(len(ratings) - bar.n)
    bar.close()
    us = 1e6 * (time.perf_counter() - start) / max(1, len(ratings))
    return {"rmse": errors.rmse, "mae": errors.mae, "ratings": errors.n, "us_per_rating": us, "curve": curve}


def run(args: argparse.Namespace, settings: Settings) -> int:
    ratings = read_ratings(args.data, args.limit)
    configured = mf_params(config_with(movielens_section(settings), args.set))
    results: dict[str, dict[str, Any]] = {}
    if not args.no_river:
        results["River BiasedMF (tutorial)"] = replay_river(ratings, args.quiet)
    results["Tailor MF, tutorial params"] = replay(ratings, TUTORIAL, "tutorial", args.quiet)
    results["Tailor MF, models.yaml"] = replay(ratings, configured, "configured", args.quiet)
    headers = ["model", "ratings", "RMSE", "MAE", "µs/rating"]
    rows = [[name, r["ratings"], r["rmse"], r["mae"], round(r["us_per_rating"], 1)] for name, r in results.items()]
    print_table(headers, rows)
    print("\nanchor (River tutorial, published): RMSE 0.9479 / MAE 0.7486; goal RMSE < 0.940\n"
          f"configured: {configured}")
    payload = {"results": results, "configured_params": configured, "anchor": {"rmse": 0.9479, "mae": 0.7486}}
    paths = write_results("movielens-mf", payload, markdown_table(headers, rows) + f"\n\nconfigured: `{configured}`")
    paths.append(line_plot(
        RESULTS_DIR / "movielens-mf.png", "MovieLens-100K test-then-learn", "ratings seen", "running RMSE",
        {name: ([n for n, _ in r["curve"]], [v for _, v in r["curve"]]) for name, r in results.items()},
    ))
    print("wrote " + ", ".join(str(p.relative_to(PROJECT_ROOT)) for p in paths))
    return 0
