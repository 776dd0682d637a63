"""/flexadmin for server admins: limits, credit, access, safety, pause, reports, audit."""
