"""Deployment history: search, timeline, reports, exports and the dashboard."""
