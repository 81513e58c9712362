from tests.integration.harness import redis_client, stack_settings  # noqa: F401  (fixtures)
