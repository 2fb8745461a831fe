//! AF_PACKET driver (being written).
