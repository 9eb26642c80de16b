//! A faithful, stateful fake of the 42 intra API v2 (tokens, rate limits, pagination, filters,
//! drift and faults), used by every test, demo and benchmark of ft42.
