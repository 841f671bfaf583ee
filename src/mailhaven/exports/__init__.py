"""Access and portability exports: a zip of one JSON document and a CSV per category."""

from mailhaven.exports.registry import register
from mailhaven.exports.service import Exported, export_account, export_recipient

__all__ = ["Exported", "export_account", "export_recipient", "register"]
