"""What a user could run instead of the Flink job, measured side by side with it by ``tailor bench``.

``consume_only``     kafka-python consume loop, no work: the client's ingest ceiling
``python_consumer``  one Python process: kafka-python in, the same operators, Redis + Kafka out
``faust_app``        a Faust (faust-streaming) app doing the same, state in a Faust table

Each runs as a child process and reports progress through :mod:`bench.baselines.progress`.
"""
