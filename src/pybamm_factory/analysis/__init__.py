"""Analyses of a finished dataset (they read its tables and write beside them, never into them)."""
