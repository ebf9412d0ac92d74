-- Proposal (one line): never let rec_experiment_daily_metrics run its
-- cached generic plan.
--
-- plpgsql caches the plan of RETURN QUERY. From the 6th call on a
-- connection (PostgREST's pooled connections: the steady state) it may use
-- the generic plan, which cannot see the day range: it estimates 5,000
-- impressions instead of 1,000,000, hashes all of them for the outcome join
-- (32 batches) and then sorts on disk. Measured on 1M impressions: about
-- 1.1-1.4 s with a custom plan, 2.0-2.2 s with the generic one.
--
-- Measure: python -m bench metrics --apply bench/proposals/metrics_custom_plan.sql

alter function public.rec_experiment_daily_metrics(text, date, date)
  set plan_cache_mode = force_custom_plan;
