//! A hashed timer wheel (being written).
