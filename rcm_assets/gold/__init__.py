"""Gold layer: dimensions, the transactions fact and the RCM KPI marts."""
