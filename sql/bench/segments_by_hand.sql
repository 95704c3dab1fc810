-- The repository's segments (marketing/segments) written by hand, as a data engineer would, for
-- `make bench`: the floor the compiled rules are measured against in the same run. Each block is
-- one SELECT of customer ids, run as INSERT ... SELECT into a scratch membership table.
-- Parameters: :t30, :t60, :t90 (the start of the run date minus 30, 60, 90 days), :d30 (a date).

-- segment: high_value
SELECT customer_id FROM customers WHERE lifetime_value > 500;

-- segment: gold_or_platinum
SELECT customer_id FROM customers WHERE tier IN ('gold', 'platinum');

-- segment: lapsed_high_value
SELECT customer_id FROM customers
WHERE lifetime_value > 500 AND (last_purchase_at < :t60 OR last_purchase_at IS NULL);

-- segment: europe_active
SELECT customer_id FROM customers
WHERE country IN ('GB', 'DE', 'FR', 'ES') AND (tier IS NULL OR tier <> 'bronze');

-- segment: everyone
SELECT customer_id FROM customers;

-- segment: repeat_buyers_lapsing
SELECT e.customer_id FROM events e JOIN customers c ON c.customer_id = e.customer_id
WHERE e.name = 'purchase' AND e.ts >= :t90
GROUP BY e.customer_id HAVING COUNT(*) >= 2 AND MAX(e.ts) < :t30;

-- segment: big_spenders_90d
SELECT e.customer_id FROM events e JOIN customers c ON c.customer_id = e.customer_id
WHERE e.name = 'purchase' AND e.ts >= :t90
GROUP BY e.customer_id HAVING SUM(e.amount) > 300;

-- segment: book_lovers
SELECT e.customer_id FROM events e JOIN customers c ON c.customer_id = e.customer_id
WHERE e.name = 'purchase' AND e.ts >= :t90 AND e.category = 'books'
GROUP BY e.customer_id HAVING COUNT(*) >= 2;

-- segment: big_basket_last_time
SELECT e.customer_id FROM events e
JOIN (SELECT customer_id, MAX(ts) AS ts FROM events WHERE name = 'purchase' GROUP BY customer_id) l
  ON l.customer_id = e.customer_id AND l.ts = e.ts
WHERE e.name = 'purchase' AND e.customer_id IN (SELECT customer_id FROM customers)
GROUP BY e.customer_id HAVING MAX(e.items) >= 3;

-- segment: coupon_collectors
SELECT e.customer_id FROM events e JOIN customers c ON c.customer_id = e.customer_id
WHERE e.name = 'purchase' AND e.coupon
GROUP BY e.customer_id HAVING COUNT(DISTINCT e.category) >= 2;

-- segment: engaged_ios_app_users
SELECT e.customer_id FROM events e
WHERE e.name = 'app_open' AND e.ts >= :t30
  AND e.customer_id IN (SELECT customer_id FROM app_installs WHERE platform = 'ios' AND push_token_present)
  AND e.customer_id IN (SELECT customer_id FROM customers)
GROUP BY e.customer_id HAVING COUNT(*) >= 5;

-- segment: beta_testers
SELECT l.customer_id FROM list_members l JOIN customers c ON c.customer_id = l.customer_id
WHERE l.list_id = 'beta_testers';

-- segment: new_customers
SELECT customer_id FROM customers WHERE signup_date >= :d30;

-- segment: active_customers
SELECT DISTINCT e.customer_id FROM events e JOIN customers c ON c.customer_id = e.customer_id
WHERE e.name = 'purchase' AND e.ts >= :t30;

-- segment: at_risk
SELECT e.customer_id FROM events e JOIN customers c ON c.customer_id = e.customer_id
WHERE e.name = 'purchase' AND e.ts >= :t90
GROUP BY e.customer_id HAVING MAX(e.ts) < :t30;

-- segment: churned
SELECT customer_id FROM customers
WHERE last_purchase_at < :t90
   OR customer_id IN (SELECT customer_id FROM events WHERE name = 'purchase'
                      GROUP BY customer_id HAVING MAX(ts) < :t90);

-- lifecycle: customer_lifecycle
SELECT c.customer_id,
       CASE WHEN n.customer_id IS NOT NULL THEN 'new_customers'
            WHEN a.customer_id IS NOT NULL THEN 'active_customers'
            WHEN r.customer_id IS NOT NULL THEN 'at_risk'
            WHEN x.customer_id IS NOT NULL THEN 'churned'
            ELSE 'prospects' END AS stage
FROM customers c
LEFT JOIN floor_membership n ON n.segment_id = 'new_customers' AND n.customer_id = c.customer_id
LEFT JOIN floor_membership a ON a.segment_id = 'active_customers' AND a.customer_id = c.customer_id
LEFT JOIN floor_membership r ON r.segment_id = 'at_risk' AND r.customer_id = c.customer_id
LEFT JOIN floor_membership x ON x.segment_id = 'churned' AND x.customer_id = c.customer_id;

-- segment: gold_anz_not_churned
SELECT c.customer_id FROM customers c
WHERE c.tier = 'gold' AND c.country IN ('AU', 'NZ')
  AND c.customer_id NOT IN (SELECT customer_id FROM floor_lifecycle WHERE stage = 'churned');
