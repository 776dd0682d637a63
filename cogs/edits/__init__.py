"""Edits and their buttons: /edit, the "Edit with FLUX" menu, /rerun, /show, result buttons."""
