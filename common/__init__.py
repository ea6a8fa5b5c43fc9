"""Shared pieces every stage uses: models, data, metadata."""
