"""Reporting: pictures and a markdown page for a run or a results directory."""
