"""The real-time scoring service (``crm-signals serve``; docs/serving-api.md)."""
