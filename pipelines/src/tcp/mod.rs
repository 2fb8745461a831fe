//! The userspace TCP stack (being written).
