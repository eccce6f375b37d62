"""Tuning logs: MetaSchedule's JSON database plus chameleon's run metadata and timeline."""
