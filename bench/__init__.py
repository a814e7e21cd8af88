"""Benchmarks: each compares the project with a baseline measured in the same run and prints the ratio."""
