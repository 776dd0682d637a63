"""The exit codes every ``flexbot`` command shares."""

EXIT_FAILED = 1  # the command ran and failed; for `reconcile`: something differs
EXIT_USAGE = 2
EXIT_LIST_FORBIDDEN = 3  # `reconcile`: the fal key cannot read fal's request list
EXIT_FAL_UNREACHABLE = 4  # `reconcile`: fal's request list could not be read for another reason
