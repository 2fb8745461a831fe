//! Scripted segment-level tests.
