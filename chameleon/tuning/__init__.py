"""Wiring: network -> tasks -> MetaSchedule task scheduler with a chosen strategy -> log."""
