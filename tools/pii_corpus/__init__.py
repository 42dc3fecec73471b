"""The labelled PII corpus generator (generate.py) and its unit test."""
