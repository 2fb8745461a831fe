//! TCP segment view (being written).
