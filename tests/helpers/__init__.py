"""What several test modules use, one module per kind of help."""
