"""Member commands about their own work: /queue, /cancel, /usage, /optout."""
