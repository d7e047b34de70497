"""SLA timers: policy section (config), business-time calendar (hours), timer state (timers), Redis (tracker)."""
