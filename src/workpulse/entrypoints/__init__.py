"""Edges: the HTTP app, the CLI, and the worker and scheduler processes."""
