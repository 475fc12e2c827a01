"""Operator tasks the `leadflow` command runs against the configured Kafka and Postgres, one module
per task: migrations, keys, replay, rescore, backtest, feedback_rebuild."""
