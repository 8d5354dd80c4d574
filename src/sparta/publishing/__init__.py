"""Publishing what a run made: a member as a standalone model (``export``), the preference pairs as a Hugging Face
dataset (``pairs``)."""

from sparta.publishing.export import Exported, ExportError, export_member, locate

__all__ = ["ExportError", "Exported", "export_member", "locate"]
