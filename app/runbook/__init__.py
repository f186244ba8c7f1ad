"""Standalone PowerShell runbooks: a deployment's plan as one .ps1 for sites the wizard cannot reach."""
