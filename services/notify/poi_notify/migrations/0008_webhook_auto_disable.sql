-- Why notify switched an endpoint off itself (its last deliveries all went dead); NULL when the integrator did, or
-- when it is on. Switching it on again clears it.
ALTER TABLE webhooks ADD COLUMN disabled_reason text;
