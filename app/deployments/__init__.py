"""Deployments: create one, list them, reopen one where it was left."""
