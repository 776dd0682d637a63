"""Flexbot core: everything that does not need Discord."""
