"""Deployment events: an append-only log with a per-deployment sequence, published to Redis, served as SSE."""
