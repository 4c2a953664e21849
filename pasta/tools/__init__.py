"""Researcher tools: benchmarks that print a table and write JSON, the text-to-image evaluation, preview grids."""
