"""Workflow definitions: loading, validating and deciding transitions."""
