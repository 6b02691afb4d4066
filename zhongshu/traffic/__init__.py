"""Counting the cars on every road: flows, travel times and congestion, batch and live."""
