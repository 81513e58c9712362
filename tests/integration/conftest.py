from tests.integration.harness import browser, redis_client, stack_settings  # noqa: F401  (fixtures)
