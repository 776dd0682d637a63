-- Which jobs may be seen from where (issue 11): a job is visible only from its own server, and
-- a job asked for in an age-restricted channel never reappears in an ordinary one.
--
-- channel_nsfw: 1 when the job's channel was age-restricted. Rows written before this migration
-- never recorded it, so they get 1: an old job from a channel we know nothing about is treated
-- as age-restricted and can only be shown, rerun or remixed from an age-restricted channel of
-- its own server. Showing it in an ordinary channel by mistake would be the harm; not showing it
-- there only costs a member a fresh /edit. New rows always write the value (bot/store/jobs.py).
ALTER TABLE jobs ADD COLUMN channel_nsfw INTEGER NOT NULL DEFAULT 1 CHECK (channel_nsfw IN (0, 1));

-- Direct messages are never age-restricted and a DM job ran under the DM safety defaults, so the
-- old DM jobs are known to be ordinary (they stay visible to their requester only).
UPDATE jobs SET channel_nsfw = 0 WHERE guild_id IS NULL;

-- The author of the message a context-menu edit took its images from (NULL otherwise): their
-- remix opt-out also covers reruns and remixes of that job.
ALTER TABLE jobs ADD COLUMN source_author_id INTEGER;
