"""Steps and helpers the guides share: the prerequisite checks, the check verdicts and the
flow of a step (detect, apply, verify). A guide imports them; no guide imports another."""
