"""Streams: events from departments' brokers turned, as they arrive, into windowed
aggregates kept as datasets of the stream's owner (queried like any other dataset)."""
