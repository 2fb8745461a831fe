//! Scheduler tests with an injected clock.
