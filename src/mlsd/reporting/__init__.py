"""The seven-step design report: one renderer, the same seven sections for every system."""

from mlsd.reporting.design import STEPS, DesignReport, monitoring_state, write_design_report
from mlsd.reporting.html import Budget, HtmlReport, pipeline_diagram

__all__ = ["STEPS", "Budget", "DesignReport", "HtmlReport", "monitoring_state", "pipeline_diagram",
           "write_design_report"]
