"""The audit of a data run: a terminal summary and a self-contained HTML report of stage two's verdicts."""

from pipeline.audit.summary import AuditSummary, format_summary, summarise

__all__ = ["AuditSummary", "format_summary", "summarise"]
