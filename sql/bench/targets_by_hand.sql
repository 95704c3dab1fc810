-- Target-list logic written by hand, as a data engineer would, for `make bench`: the floor the
-- engine's generated SQL is measured against in the same run. Blocks are filled per campaign by
-- the bench: {audience}, {device_join}, {no_device}, {held_out}, {variant}, {capped_join},
-- {capped} are hand-written fragments; {hash(x)} is the md5 bucket of the engine (co_hash32 on
-- SQLite). Parameters are bound. The send slots of the engine's run are reused.

-- block: candidates
INSERT INTO floor_candidates (campaign_id, customer_id, channel, priority, variant, send_at, reason)
SELECT :campaign_id, c.customer_id, :channel, :priority, {variant}, q.send_at,
       CASE WHEN s.customer_id IS NOT NULL THEN 'suppressed'
            WHEN p.customer_id IS NULL THEN 'not_opted_in'
            WHEN {no_device} THEN 'no_device'
            WHEN {held_out} THEN 'held_out'
            WHEN q.dropped = {true} THEN 'quiet_hours_dropped'
            WHEN {capped} THEN 'capped_campaign'
       END
FROM customers c
LEFT JOIN suppressions s ON s.customer_id = c.customer_id
LEFT JOIN preference_state p ON p.customer_id = c.customer_id AND p.channel = :channel AND p.enabled = {true}
LEFT JOIN send_slots q ON q.run_date = :run_date AND q.campaign_id = :campaign_id
                      AND q.timezone = COALESCE(c.timezone, '')
{device_join}
{capped_join}
WHERE {audience};

-- block: arbitration
INSERT INTO floor_arbitration (campaign_id, customer_id, channel, priority, variant, send_at,
                               channel_rank, channel_budget, total_budget)
SELECT c.campaign_id, c.customer_id, c.channel, c.priority, c.variant, c.send_at,
       ROW_NUMBER() OVER (PARTITION BY c.customer_id, c.channel ORDER BY c.priority, c.campaign_id),
       {channel_cap} - COALESCE(sc.n, 0),
       :daily_cap - COALESCE(st.n, 0)
FROM floor_candidates c
LEFT JOIN (SELECT o.customer_id, o.channel, COUNT(*) AS n
           FROM outbox o LEFT JOIN delivery_batches b ON b.batch_id = o.batch_id
           WHERE o.slot_date = :run_date AND o.run_date < :run_date
             AND COALESCE(o.state, b.state) IN ('pending', 'in_flight', 'sent', 'failed', 'unknown')
           GROUP BY o.customer_id, o.channel) sc ON sc.customer_id = c.customer_id AND sc.channel = c.channel
LEFT JOIN (SELECT o.customer_id, COUNT(*) AS n
           FROM outbox o LEFT JOIN delivery_batches b ON b.batch_id = o.batch_id
           WHERE o.slot_date = :run_date AND o.run_date < :run_date
             AND COALESCE(o.state, b.state) IN ('pending', 'in_flight', 'sent', 'failed', 'unknown')
           GROUP BY o.customer_id) st ON st.customer_id = c.customer_id
WHERE c.reason IS NULL;

-- block: targets
INSERT INTO floor_targets (campaign_id, customer_id, variant, send_at)
SELECT campaign_id, customer_id, variant, send_at FROM (
    SELECT a.*, ROW_NUMBER() OVER (PARTITION BY a.customer_id ORDER BY a.priority, a.campaign_id) AS total_rank
    FROM floor_arbitration a WHERE a.channel_rank <= a.channel_budget) f
WHERE total_rank <= total_budget;

-- block: exclusions
INSERT INTO floor_exclusions (campaign_id, customer_id, reason)
SELECT campaign_id, customer_id, reason FROM floor_candidates WHERE reason IS NOT NULL
UNION ALL
SELECT campaign_id, customer_id, CASE WHEN channel_budget <= 0 THEN 'capped_global' ELSE 'lost_arbitration' END
FROM floor_arbitration WHERE channel_rank > channel_budget
UNION ALL
SELECT campaign_id, customer_id, CASE WHEN total_budget <= 0 THEN 'capped_global' ELSE 'lost_arbitration' END
FROM (SELECT a.*, ROW_NUMBER() OVER (PARTITION BY a.customer_id ORDER BY a.priority, a.campaign_id) AS total_rank
      FROM floor_arbitration a WHERE a.channel_rank <= a.channel_budget) f
WHERE total_rank > total_budget;
