"""The central admin's REST API and pages."""

from controller.admin.app import create_admin_app

__all__ = ["create_admin_app"]
