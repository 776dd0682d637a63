-- The context menu looks a Flexbot result message up to honour its requester's remix opt-out.
CREATE INDEX jobs_by_result_message ON jobs (result_message_id);
