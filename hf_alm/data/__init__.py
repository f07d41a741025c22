"""hf-alm data layer."""
