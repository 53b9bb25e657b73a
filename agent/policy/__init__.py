"""The policy language: schema, loader with precise errors, and reload on change."""
