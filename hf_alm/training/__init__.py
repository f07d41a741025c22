"""hf-alm training layer."""
