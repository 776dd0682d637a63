-- Issue 14 (community controls and languages): filled in by that work; a placeholder until then
-- so the version numbers of issues 14 and 15 stay in order whichever lands first.
SELECT 1;
