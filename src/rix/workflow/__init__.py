"""The radiology workflow: orders, the worklists, reports and turnaround (issue 7)."""
