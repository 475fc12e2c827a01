"""Typed Python clients of leadflow's HTTP APIs."""
