"""Thin discord.py adapters over the Flexbot core."""
