"""Core's built-in plugin: synthetic tasks, generic models, heads, metrics and backends."""
