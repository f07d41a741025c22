"""hf-alm evaluation layer."""
