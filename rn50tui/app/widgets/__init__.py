"""Widgets of the app: the jobs table, charts and card panels."""
