-- Issue 15 (the web gallery): filled in by that work; a placeholder until then.
SELECT 1;
