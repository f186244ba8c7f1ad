"""Hand-over: one driver per deployment (lease), take-over, the needs-attention list, drift checks."""
