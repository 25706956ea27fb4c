"""Helpers for bench/run.py: processes, dnsperf, probes, data and reports."""
