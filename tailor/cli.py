"""The ``tailor`` command line: one command group, nouns then verbs, thin over library functions.

Every error exits non-zero with a message that says what to fix.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pipelines.state_layout import JOB_NAME, state_dirs
from settings import PROJECT_ROOT, ConfigError, Settings
from settings.errors import TailorError

DEMO_RULES = PROJECT_ROOT / "config" / "demo-segments.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        settings = Settings.load(args.config)
        return int(args.handler(args, settings) or 0)
    except (TailorError, ConfigError) as exc:
        print(f"tailor: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tailor: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="tailor",
        description="Tailor: real-time segments from a Kafka clickstream, on PyFlink, Kafka and Redis.",
        epilog="Start here: `tailor demo` (everything, live) or `tailor test`. "
        "Settings: defaults < --config YAML < TAILOR_* environment variables (see README).",
        formatter_class=fmt,
    )
    parser.add_argument("--config", type=Path, help="YAML file with settings (see settings/__init__.py)")
    nouns = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = nouns.add_parser(
        "demo", help="stack + job + simulated shoppers, printing live segment changes and recommendations",
        formatter_class=fmt,
    )
    demo.add_argument("--rate", type=float, default=100, help="simulated events per second")
    demo.add_argument("--duration", type=float, default=0, help="seconds to run (0 = until Ctrl-C)")
    demo.add_argument("--users", type=int, default=300, help="simulated shoppers")
    demo.add_argument("--rules", type=Path, default=DEMO_RULES, help="segment rules (demo: minutes instead of days)")
    demo.add_argument("--recalibrate-every", type=float, default=120, metavar="SECONDS",
                      help="run `tailor recalibrate --apply` (config/demo-recalibration.yaml) this often; 0: never")
    demo.add_argument("--show", default="rules,clusters,recs",
                      help="what to print, comma-separated: rules, clusters (ML segments), recs (recommendations)")
    demo.set_defaults(handler=cmd_demo)

    test = nouns.add_parser(
        "test", help="start the stack and run the test suite (args go to pytest)", formatter_class=fmt,
        description="Runs pytest: tests/, the doctests of the source packages and the code-quality gates "
        "(ruff, mypy: tests/test_code_quality.py). The full run starts the local Kafka + Redis stack first "
        "(installing what is missing); CI runs exactly that. --unit runs only the pure tests, pytest -m "
        "'not integration' (unit tests, doctests, the gates, and the slow dataset replays), without starting "
        "the stack. Pytest arguments go after the options, after -- when they start with a dash: "
        "`tailor test --unit -- -m 'not slow' -k rules`; with --unit a -m expression is narrowed to the pure "
        "tests ('not integration and (EXPR)').",
    )
    test.add_argument("--unit", action="store_true",
                      help="only the pure tests (-m 'not integration', slow ones included); no stack started")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments, e.g. -- -k normalize")
    test.set_defaults(handler=cmd_test)

    stack = nouns.add_parser("stack", help="the local Kafka + Redis stack (installs what is missing)")
    stack_verbs = stack.add_subparsers(title="verbs", metavar="VERB")
    stack_up = stack_verbs.add_parser("up", help="install and start Kafka and Redis, create topics")
    stack_up.set_defaults(handler=cmd_stack_up)
    stack_verbs.add_parser("down", help="stop Kafka and Redis (data stays)").set_defaults(handler=cmd_stack_down)
    stack_verbs.add_parser("status", help="what is installed and running").set_defaults(handler=cmd_stack_status)

    topics_noun = nouns.add_parser("topics", help="Kafka topics on any broker (settings kafka_host/port)")
    topics_verbs = topics_noun.add_subparsers(title="verbs", metavar="VERB")
    topics_verbs.add_parser("create", help="create Tailor's topics if missing").set_defaults(handler=cmd_topics_create)

    job = nouns.add_parser("job", help="the segmentation job")
    job_verbs = job.add_subparsers(title="verbs", metavar="VERB")
    run = job_verbs.add_parser(
        "run", help="run the job (embedded mini-cluster by default), resuming from its retained state",
        description="Runs the segmentation job. A start resumes from the newest retained checkpoint or savepoint "
        "of this consumer group (settings consumer_group, state_dir) and says which; a first start begins "
        "empty. Only --fresh starts empty on purpose, and it refuses while retained state exists unless "
        "--discard-state moves that state aside.",
        formatter_class=fmt,
    )
    run.add_argument("--rules", type=Path, help="segment rules YAML (default: settings segments_file)")
    run.add_argument("--bounded", action="store_true", help="stop at the topic's current end (replays)")
    run.add_argument("--cluster", action="store_true", help="submit to the standalone Flink cluster (starts it)")
    run.add_argument("--parallelism", type=int, help="operator parallelism (default: settings parallelism)")
    run.add_argument("--fresh", action="store_true",
                     help="start with empty state and read the events topic from its start (a full replay)")
    run.add_argument("--discard-state", action="store_true",
                     help="with --fresh: move retained checkpoints and savepoints aside instead of refusing")
    run.set_defaults(handler=cmd_job_run)
    stop = job_verbs.add_parser(
        "stop", help="stop the running job with a savepoint (the next `job run` resumes from it)",
        description="Stops the running segmentation job on the Flink REST API at settings rest_port (the "
        "embedded mini-cluster of `tailor job run` or the standalone cluster) with a savepoint under the "
        "job's state dir, and prints its path.",
        formatter_class=fmt,
    )
    stop.add_argument("--timeout", type=float, default=120, help="seconds to wait for the savepoint")
    stop.set_defaults(handler=cmd_job_stop)

    rules_noun = nouns.add_parser("rules", help="the running job's segment rules")
    rules_verbs = rules_noun.add_subparsers(title="verbs", metavar="VERB")
    rules_apply = rules_verbs.add_parser(
        "apply", help="put a rules file in force in the running job, without a restart",
        description="Check a segment rules file (as `tailor job run --rules` does) and publish it to the events\n"
        "topic as a rules update. The running job puts it in force as it reads it (within a batch window of\n"
        "reading it), keeps it in its state across restarts, and evaluates each user under it at their next\n"
        "event or deadline; memberships of removed rules are exited then. Segment changes carry the\n"
        "rules_version that made them. A restart with `tailor job run --rules FILE` keeps the applied\n"
        "rules: apply FILE to go back to it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rules_apply.add_argument("file", type=Path, help="a segment rules YAML file (see config/segments.yaml)")
    rules_apply.set_defaults(handler=cmd_rules_apply)

    recalibrate = nouns.add_parser(
        "recalibrate", help="propose rule thresholds from the events topic, validate them, apply them live",
        description="Replay the last days of the events topic through the job's per-user step with every\n"
        "candidate value of the plan's thresholds (config/recalibration.yaml: e.g. hesitant_min_views,\n"
        "abandon_after). Each candidate is scored by how well entering its segment picks the shoppers who\n"
        "do not buy by themselves within the outcome window (F-beta of precision and of at-risk cart adds\n"
        "caught). The best value on the earlier part is validated against the value in force on the later,\n"
        "held-out part and proposed only if it wins there by the plan's margin. When the job runs the\n"
        "models, each candidate recommendation blend is a test-then-learn replay of the product events\n"
        "(Recall@10), chosen and validated the same way. --apply publishes the recalibrated rules, with\n"
        "the blend as live model settings, as `tailor rules apply` does (no restart). Every run is appended to\n"
        "evaluation-results/recalibrations.jsonl with its before and after figures.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    recalibrate.add_argument("--plan", type=Path, default=PROJECT_ROOT / "config" / "recalibration.yaml",
                             help="what may change and how it is judged (default: config/recalibration.yaml)")
    recalibrate.add_argument("--rules", type=Path, default=None,
                             help="the rules in force if the topic holds no rules update (default: settings "
                             "segments_file)")
    recalibrate.add_argument("--days", type=float, default=None, help="replay this many days (default: the plan's)")
    recalibrate.add_argument("--apply", action="store_true",
                             help="publish the recalibrated rules (and blend) to the running job")
    recalibrate.add_argument("--skip-blend", action="store_true",
                             help="thresholds only: no recommender replays (they take ~13 s per 30k events each)")
    recalibrate.set_defaults(handler=cmd_recalibrate)

    produce = nouns.add_parser(
        "produce", help="publish a JSONL file of Segment events, or the Taobao CSV", formatter_class=fmt
    )
    produce.add_argument("file", type=Path, help="JSONL (one Segment-Spec event per line) or Taobao CSV")
    produce.add_argument("--format", choices=["auto", "jsonl", "taobao"], default="auto", help="input format")
    produce.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    produce.add_argument("--limit", type=int, help="stop after this many lines")
    produce.set_defaults(handler=cmd_produce)

    import_noun = nouns.add_parser(
        "import", help="load CRM / third-party records (CSV or JSONL) as identify events, with a mapping file",
        description="Publish one Segment identify message per row to the events topic, mapped by a YAML file\n"
        "(see config/crm-import.yaml): user_id (the master id), optional anonymous_id (linked to it by\n"
        "the job's identity stitching), timestamp, traits and consent columns. The messages say\n"
        "context.active=false: they link ids and apply consent but are not activity. Rows that cannot be\n"
        "used are not sent; they are listed with their line numbers in a CSV report. Importing the same\n"
        "file again is harmless: each row's messageId is a hash of its content, and the job drops\n"
        "duplicates.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    import_noun.add_argument("file", type=Path, help="a CSV file with a header row, or JSONL (one object per line)")
    import_noun.add_argument("--mapping", type=Path, required=True,
                             help="YAML mapping of message parts to columns (example: config/crm-import.yaml)")
    import_noun.add_argument("--format", choices=["auto", "csv", "jsonl"], default="auto",
                             help="input format (default: auto, by extension: .csv; .jsonl, .ndjson, .json)")
    import_noun.add_argument("--report", type=Path,
                             help="where to write the rows not imported (default: FILE-NAME.import-report.csv "
                                  "in the working directory; written only if a row was rejected)")
    import_noun.set_defaults(handler=cmd_import)

    collect = nouns.add_parser(
        "collect", help="Segment's HTTP Tracking API in front of the events topic: point an SDK's host at it",
        description="Serve Segment's HTTP Tracking API (/v1/track, identify, page, screen, group, alias, batch)."
        " Events are validated with the job's schema (invalid ones go to the dead-letter topic, and the "
        "response lists them) and acknowledged only after Kafka stored them (503 + Retry-After otherwise).\n\n"
        "Point an SDK at it, e.g. analytics-python: analytics.write_key = 'KEY'; "
        "analytics.host = 'http://127.0.0.1:8088'.",
        formatter_class=fmt,
    )
    collect.add_argument("--write-key", action="append", default=[], metavar="KEY",
                         help="accept this write key (repeatable; default: setting collector_write_keys, "
                              "env TAILOR_COLLECTOR_WRITE_KEYS)")
    collect.add_argument("--host", help="listen address (default: setting collector_host, 127.0.0.1)")
    collect.add_argument("--port", type=int, help="listen port (default: setting collector_port, 8088)")
    collect.set_defaults(handler=cmd_collect)

    serve_noun = nouns.add_parser(
        "serve", help="the serving API: profiles, recommendations, content decisions (cache, breaker, fallback)",
        description="Serve GET /v1/users/{id}/profile, GET /v1/users/{id}/recommendations?k=, POST /v1/decide, "
        "/health, /metrics and the OpenAPI document (/openapi.json, /docs) from the job's Redis, with a per-request "
        "time budget, a stale-while-revalidate cache, a circuit breaker and fallback content.",
        formatter_class=fmt,
    )
    serve_noun.add_argument("--decisions", type=Path, help="decision matrix YAML (default: setting decisions_file)")
    serve_noun.add_argument("--host", help="listen address (default: setting serve_host, 127.0.0.1)")
    serve_noun.add_argument("--port", type=int, help="listen port (default: setting serve_port, 8090)")
    serve_noun.set_defaults(handler=cmd_serve)

    erase_noun = nouns.add_parser(
        "erase", help="forget a person: segments exited, state, models and Redis deleted, later events dropped",
        description="Publish an erase request for USER_ID to the events topic. The running job applies it in "
        "order with that user's events: every rule and ML segment is exited (trigger 'erase'), the profile and "
        "model state are deleted, the Redis profile, recommendations and audience memberships are deleted, and "
        "a suppression marker drops the id's later events. Pseudonymised ids are handled by the job.",
        formatter_class=fmt,
    )
    erase_noun.add_argument("user_id", help="the userId (or anonymousId) as producers send it")
    erase_noun.set_defaults(handler=cmd_erase)

    dead_letters = nouns.add_parser("dead-letters", help="records the job could not use (the dead-letters topic)")
    dead_letter_verbs = dead_letters.add_subparsers(dest="verb", required=True, metavar="VERB")
    replay_verb = dead_letter_verbs.add_parser(
        "replay", help="re-submit the dead letters that pass today's validation, exactly once",
        description="After a fix (a relaxed schema, a new event-name mapping, a fixed operator): read the "
        "dead-letters topic, check every original payload with the job's current validation, and publish the "
        "ones that pass to the events topic as they were received (keyed by user, stamped with their event "
        "time). Each is recorded by messageId in the compacted topic <dead letters topic>.replayed in the same "
        "Kafka transaction, so running the replay again (or after an interruption) sends nothing twice. "
        "Letters that are still invalid are counted by their current error code, with a reason.",
        formatter_class=fmt,
    )
    replay_verb.add_argument("--error", action="append", default=[], metavar="CODE",
                             help="only letters rejected with this code (repeatable), e.g. invalid_event_name")
    replay_verb.add_argument("--dry-run", action="store_true", help="judge and count; publish nothing")
    replay_verb.set_defaults(handler=cmd_dead_letters_replay)

    simulate = nouns.add_parser("simulate", help="publish seeded, realistic shopper traffic", formatter_class=fmt)
    simulate.add_argument("--rate", type=float, default=200, help="events per second")
    simulate.add_argument("--duration", type=float, default=60, help="seconds")
    simulate.add_argument("--users", type=int, default=2000, help="shoppers")
    simulate.add_argument("--seed", type=int, default=7, help="random seed (same seed, same traffic)")
    simulate.set_defaults(handler=cmd_simulate)

    watch = nouns.add_parser(
        "watch", help="print segment changes and recommendations live, as Redis publishes them",
        description="One line per rule segment change, ML segment (cluster) change and new recommendation "
        "list, from the job's Redis pub/sub channels <prefix>segment-changes and <prefix>recommendations. "
        "The demo's live under TAILOR_REDIS_PREFIX=tailor-demo: .",
        formatter_class=fmt,
    )
    watch.add_argument("--duration", type=float, default=0, help="seconds (0 = until Ctrl-C)")
    watch.add_argument("--show", default="rules,clusters,recs",
                       help="what to print, comma-separated: rules, clusters (ML segments), recs (recommendations)")
    watch.set_defaults(handler=cmd_watch)

    show = nouns.add_parser(
        "show", help="what the job knows now: a user's profile and recommendations, or the ML segments",
        description="Reads what the job wrote (Redis; for clusters also the segment-changes topic). "
        "The demo's data lives under TAILOR_REDIS_PREFIX=tailor-demo: "
        "(and TAILOR_SEGMENT_CHANGES_TOPIC=tailor-demo.segment-changes).",
    )
    show_nouns = show.add_subparsers(title="what", metavar="WHAT")
    show_user = show_nouns.add_parser(
        "user", help="profile hash (rule segments, ML segment, counters) and latest recommendations",
        formatter_class=fmt,
    )
    show_user.add_argument("user_id", help="the user key the job tracks: userId, else anonymousId")
    show_user.set_defaults(handler=cmd_show_user)
    show_clusters = show_nouns.add_parser(
        "clusters", help="current ML segments: audience size and explanation", formatter_class=fmt,
        description="Lists every ML segment entered within the tail of the segment-changes topic, with its "
        "live audience size (Redis set) and the reason of its most recent enter as the explanation (the "
        "cluster's description as of that change; the model hub keeps no other cluster catalog).",
    )
    show_clusters.add_argument("--tail", type=int, default=5000,
                               help="segment-change records read per partition, from the end")
    show_clusters.set_defaults(handler=cmd_show_clusters)

    catalog = nouns.add_parser("catalog", help="item metadata for the recommender (the compacted catalog topic)")
    catalog_verbs = catalog.add_subparsers(title="verbs", metavar="VERB")
    from tailor import catalog as catalog_module

    load = catalog_verbs.add_parser(
        "load", help="publish a catalog (movielens, taobao or simulated) to the catalog topic",
        description="Publish item metadata (title, category, tags) as tailor.catalog_item/1 records keyed by\n"
        "item id to the compacted catalog topic (settings catalog_topic), where the job's recommender reads\n"
        "it, live. Loading again replaces each item's record. Sources:\n\n"
        "  movielens  the 1,682 movies of MovieLens-100K (u.item, u.genre): title, genres as tags\n"
        "  taobao     the distinct items of the Taobao sample CSV: category only (the data has no titles)\n"
        "  simulated  the products `tailor simulate` shops for: same ids (p<i>) and categories (c<k>) as its\n"
        "             events when --users and --seed match the simulation's",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load.add_argument("source", choices=catalog_module.SOURCES, help="which catalog (see above)")
    load.add_argument("--path", type=Path,
                      help="movielens: the ml-100k directory, taobao: the CSV file (default: "
                      f"{catalog_module.DEFAULT_PATHS['movielens']}, {catalog_module.DEFAULT_PATHS['taobao']})")
    load.add_argument("--users", type=int, default=catalog_module.SIMULATED_USERS,
                      help="simulated: the simulation's --users; product categories depend on it "
                      f"(default: {catalog_module.SIMULATED_USERS}, as `tailor simulate`)")
    load.add_argument("--seed", type=int, default=catalog_module.SIMULATED_SEED,
                      help=f"simulated: the simulation's --seed (default: {catalog_module.SIMULATED_SEED})")
    load.set_defaults(handler=cmd_catalog_load)

    experiments = nouns.add_parser("experiments", help="A/B tests: results from the events topic")
    experiment_verbs = experiments.add_subparsers(dest="verb", required=True, metavar="VERB")
    report_verb = experiment_verbs.add_parser(
        "report", help="per experiment, segment and variant: conversion, lift, CI, p (Holm), SRM, decision",
        description="Read the events topic: every Experiment Viewed event is an exposure (experiment_name, "
        "variation_name, and the user's segments when shown); each user counts in the variant of their first "
        "exposure, and converts with an Order Completed within the attribution window. Prints a table per "
        "experiment (everyone, then per segment): users, conversion rates, lift, the difference with its 95%% "
        "confidence interval, p, p adjusted by Holm across the experiment's rows, the sample-ratio-mismatch p and "
        "a decision, which waits for the designed sample per arm (fixed horizon: looking early decides nothing); "
        "then click-through, bounce rate and engagement per arm. Writes a plot and JSON/Markdown to "
        "evaluation-results/.",
        formatter_class=fmt,
    )
    report_verb.add_argument("--experiments", type=Path, default=PROJECT_ROOT / "config" / "experiments.yaml",
                             help="experiments YAML")
    report_verb.add_argument("--attribution-days", type=float, default=7.0,
                             help="a conversion counts if it happens within this many days of the exposure")
    report_verb.add_argument("--live", action="store_true",
                             help="from the running job's outcome totals in Redis (attribution 7 days), "
                                  "instead of reading the whole events topic")
    report_verb.set_defaults(handler=cmd_experiments_report)

    evaluate = nouns.add_parser(
        "evaluate", help="replay a dataset test-then-learn through the models; table + plot",
        description="Replays a real dataset through the same operator code the job runs (test, then learn, "
        "event by event) and reports model quality.",
    )
    evaluations = evaluate.add_subparsers(title="evaluations", metavar="EVALUATION")
    import evaluation

    for name, module in evaluation.modules():
        parser_ = evaluations.add_parser(
            name.replace("_", "-"), help=module.HELP, description=module.__doc__, formatter_class=fmt
        )
        module.add_arguments(parser_)
        parser_.set_defaults(handler=module.run)

    from bench import command as bench_command

    # Plain formatter: the bench's help texts state their defaults (which depend on --smoke) themselves.
    bench = nouns.add_parser("bench", help="benchmark the job side by side with the alternatives (or profile it)",
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    bench_command.add_arguments(bench)
    bench.set_defaults(handler=cmd_bench)
    return parser


# -- stack -------------------------------------------------------------------------------------------
def cmd_stack_up(args: argparse.Namespace, settings: Settings) -> int:
    import stack

    stack.up(settings)
    return 0


def cmd_stack_down(args: argparse.Namespace, settings: Settings) -> int:
    import stack

    stack.down(settings)
    return 0


def cmd_stack_status(args: argparse.Namespace, settings: Settings) -> int:
    import stack

    rows = stack.status(settings)
    for row in rows:
        print(f"{row.component:<11} {row.state:<8} {row.detail}")
    return 0 if all(r.state in ("ok", "running") for r in rows) else 1


def cmd_topics_create(args: argparse.Namespace, settings: Settings) -> int:
    from connectors import kafka_topics as topics

    for name, state in topics.ensure_topics(settings).items():
        print(f"{name}: {state}")
    return 0


# -- job ---------------------------------------------------------------------------------------------
def cmd_job_run(args: argparse.Namespace, settings: Settings) -> int:
    import stack
    from stack import local_job
    from stack.job_state import plan_start

    if args.parallelism:
        settings = Settings.load(args.config, parallelism=args.parallelism)
    if args.discard_state and not args.fresh:
        print("tailor: error: --discard-state only goes with --fresh", file=sys.stderr)
        return 2
    rules_file = args.rules or settings.segments_file
    # Load and validate here, with the file names, rather than on a TaskManager at the first record.
    rules, models = local_job.job_config(settings, rules_file)
    from connectors import kafka_topics

    created = [name for name, state in kafka_topics.ensure_topics(settings).items() if state == "created"]
    if created:  # e.g. an output topic a newer Tailor writes to: its sink would fail at the first record
        print(f"created missing topics: {', '.join(created)}", flush=True)
    plan = plan_start(settings, fresh=args.fresh, discard_state=args.discard_state)
    print(plan.message, flush=True)
    if args.cluster:
        from stack import flink_cluster, flink_jobs

        stack.up(settings)
        flink_cluster.start(settings)
        job_id = flink_jobs.submit(
            settings, rules_file=rules_file, bounded=args.bounded,
            from_savepoint=None if plan.restore is None else plan.restore.path,
            args=["--from-earliest"] if plan.from_earliest else (),
        )
        print(f"submitted job {job_id}; Flink Web UI: http://127.0.0.1:{settings.rest_port}/#/job/{job_id}")
        return 0
    print(f"running {rules_file.name} on the embedded mini-cluster; Flink Web UI: http://127.0.0.1:{settings.rest_port}",
          flush=True)
    local_job.run(settings, rules, models, bounded=args.bounded, plan=plan)
    return 0


def cmd_job_stop(args: argparse.Namespace, settings: Settings) -> int:
    from stack import flink_jobs

    job_id = flink_jobs.running_job(settings)
    if job_id is None:
        print(f"tailor: error: no running {JOB_NAME} job on http://127.0.0.1:{settings.rest_port} "
              "(is it started with `tailor job run`, with the same settings?)", file=sys.stderr)
        return 1
    savepoints = state_dirs(settings).savepoints
    print(f"stopping job {job_id} with a savepoint under {savepoints} ...", flush=True)
    location = flink_jobs.stop_with_savepoint(settings, job_id, target_dir=savepoints, timeout_s=args.timeout)
    print(f"stopped; savepoint {location} (the next `tailor job run` resumes from it)")
    return 0


# -- traffic -----------------------------------------------------------------------------------------
def cmd_rules_apply(args: argparse.Namespace, settings: Settings) -> int:
    from tailor.rules import apply

    applied = apply(settings, args.file)
    print(applied.summary(args.file, settings.events_topic))
    return 0


def cmd_recalibrate(args: argparse.Namespace, settings: Settings) -> int:
    from tailor.recalibrate import recalibrate

    if args.days is not None and args.days <= 0:
        raise TailorError(f"--days must be positive, got {args.days:g}")
    recalibrate(settings, args.plan, args.rules or settings.segments_file, apply=args.apply, days=args.days,
                skip_blend=args.skip_blend)
    return 0


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    from tailor.produce import produce_file

    if not args.file.exists():
        print(f"tailor: error: {args.file} does not exist", file=sys.stderr)
        return 1
    report = produce_file(settings, args.file, fmt=args.format, rate=args.rate, limit=args.limit)
    return 0 if report.sent else 1


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from tailor.imports import import_file, load_mapping

    report = import_file(settings, args.file, load_mapping(args.mapping), fmt=args.format, report_path=args.report)
    return 0 if report.sent else 1


def cmd_collect(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.collector import serve

    keys = frozenset(args.write_key) | {k.strip() for k in settings.collector_write_keys.split(",") if k.strip()}
    if not keys:
        print("tailor: error: no write key: pass --write-key KEY (the key your SDKs send) or set "
              "TAILOR_COLLECTOR_WRITE_KEYS=KEY1,KEY2", file=sys.stderr)
        return 2
    host, port = args.host or settings.collector_host, args.port or settings.collector_port
    print(f"collecting on http://{host}:{port}/v1/ -> {settings.events_topic} on {settings.kafka_bootstrap} "
          f"({len(keys)} write key(s)); Ctrl-C stops", flush=True)
    serve(settings, keys, host, port)
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.serving import serve
    from operators.decisions import DecisionMatrix
    from operators.experiments import load_experiments

    decisions = args.decisions or settings.decisions_file
    if not decisions.exists():
        print(f"tailor: error: decision matrix {decisions} does not exist (see config/decisions.yaml)", file=sys.stderr)
        return 2
    DecisionMatrix.from_yaml(decisions)  # refuse to start on an invalid matrix, with its line number
    if not settings.experiments_file.exists():
        print(f"tailor: error: experiments file {settings.experiments_file} does not exist (setting experiments_file; "
              "see config/experiments.yaml)", file=sys.stderr)
        return 2
    load_experiments(settings.experiments_file)  # likewise
    host, port = args.host or settings.serve_host, args.port or settings.serve_port
    print(f"serving on http://{host}:{port}/v1/ (docs: /docs) from Redis {settings.redis_host}:{settings.redis_port} "
          f"prefix {settings.redis_prefix!r}, decisions {decisions}; Ctrl-C stops", flush=True)
    serve(settings, decisions, host, port)
    return 0


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    from tailor.erase import erase

    if not args.user_id.strip():
        print("tailor: error: USER_ID must not be empty", file=sys.stderr)
        return 2
    message_id = erase(settings, args.user_id)
    print(f"erase request {message_id} for {args.user_id!r} published to {settings.events_topic}; the job applies "
          "it in order with that user's events (segment exits with trigger 'erase' on "
          f"{settings.segment_changes_topic})")
    return 0


def cmd_experiments_report(args: argparse.Namespace, settings: Settings) -> int:
    from tailor.experiments import report

    if args.attribution_days <= 0:
        print("tailor: error: --attribution-days must be positive", file=sys.stderr)
        return 2
    report(settings, args.experiments, args.attribution_days, live=args.live)
    return 0


def cmd_dead_letters_replay(args: argparse.Namespace, settings: Settings) -> int:
    from tailor.dead_letters import replay_dead_letters

    replay_dead_letters(settings, args.error, args.dry_run)
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from tailor.simulate import simulate

    simulate(settings, rate=args.rate, duration_s=args.duration, users=args.users, seed=args.seed)
    return 0


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    from tailor.watch import HEADER, parse_show, watch

    show = parse_show(args.show)
    print(HEADER, flush=True)
    watch(settings, duration_s=args.duration, show=show, out=lambda line: print(line, flush=True))
    return 0


# -- show, catalog -----------------------------------------------------------------------------------
def cmd_show_user(args: argparse.Namespace, settings: Settings) -> int:
    from tailor.show import format_user, user_view

    print("\n".join(format_user(user_view(settings, args.user_id))))
    return 0


def cmd_show_clusters(args: argparse.Namespace, settings: Settings) -> int:
    from tailor.show import cluster_rows, format_clusters

    if args.tail < 1:
        print("tailor: error: --tail must be at least 1", file=sys.stderr)
        return 2
    rows = cluster_rows(settings, tail=args.tail)
    if not rows:
        print(f"no ML segment changes in the last {args.tail} records per partition of "
              f"{settings.segment_changes_topic}: is the job running with models on, past its warm-up?")
        return 1
    print("\n".join(format_clusters(rows)))
    return 0


def cmd_catalog_load(args: argparse.Namespace, settings: Settings) -> int:
    from tailor.catalog import catalog_items, load_catalog

    if args.path is not None and args.source == "simulated":
        print("tailor: error: --path is for movielens and taobao; the simulated catalog is generated", file=sys.stderr)
        return 2
    if args.source == "simulated" and args.users < 1:
        print("tailor: error: --users must be at least 1", file=sys.stderr)
        return 2
    items = catalog_items(args.source, path=args.path, users=args.users, seed=args.seed)
    print(f"publishing {len(items):,} {args.source} items to {settings.catalog_topic} on {settings.kafka_bootstrap}"
          " ...",
          flush=True)
    report = load_catalog(settings, items, source=args.source)
    print(f"published {report.sent:,} catalog items to {report.topic} in {report.elapsed_s:.1f} s "
          "(keyed by item id; the latest record per item wins)")
    return 0


# -- demo, test, bench -------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from tailor.demo import run_demo
    from tailor.watch import parse_show

    show = parse_show(args.show)
    if args.recalibrate_every < 0:
        raise TailorError(f"--recalibrate-every must be 0 (never) or seconds, got {args.recalibrate_every:g}")
    return run_demo(settings, rules=args.rules, rate=args.rate, duration_s=args.duration, users=args.users, show=show,
                    recalibrate_every_s=args.recalibrate_every)


def cmd_test(args: argparse.Namespace, settings: Settings) -> int:
    extra = [a for a in args.pytest_args if a != "--"]
    if args.unit:
        extra = unit_pytest_args(extra)  # pure tests only: nothing needs the stack
    else:
        import stack

        stack.up(settings)
    code = subprocess.call([sys.executable, "-m", "pytest", *extra], cwd=PROJECT_ROOT, env=dict(os.environ))
    if code == 5:
        print("tailor: error: pytest collected no tests", file=sys.stderr)
        return 1
    return code


def unit_pytest_args(pytest_args: Sequence[str]) -> list[str]:
    """The pytest arguments of ``tailor test --unit``: the given ones, every ``-m`` narrowed to the pure tests.

    >>> unit_pytest_args(["tests/operators", "-q"])
    ['-m', 'not integration', 'tests/operators', '-q']
    >>> unit_pytest_args(["-m", "not slow", "-k", "rules"]), unit_pytest_args(["-mslow"])
    (['-m', 'not integration and (not slow)', '-k', 'rules'], ['-m', 'not integration and (slow)'])
    """
    args, narrowed, rest = [], False, list(pytest_args)
    while rest:
        arg = rest.pop(0)
        if arg == "-m" and rest:
            arg += rest.pop(0)
        if arg.startswith("-m") and len(arg) > 2:
            args += ["-m", f"not integration and ({arg[2:]})"]
            narrowed = True
        else:
            args.append(arg)
    return args if narrowed else ["-m", "not integration", *args]


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from bench import command as bench_command

    return bench_command.run(args, settings)
