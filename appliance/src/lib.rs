//! The Rouge appliance: configuration, the workers pinned to cores, the control
//! thread, the management socket and the console CLI. The `rouge` binary is a thin
//! front over this library; end-to-end tests and fuzz targets use it directly.

pub mod any_port;
pub mod cli;
pub mod config;
pub mod connections;
pub mod console;
pub mod cputime;
pub mod egress;
pub mod handoff;
pub mod http;
pub mod idle;
pub mod metrics;
pub mod mgmt;
pub mod ports;
pub mod readiness;
pub mod rebalance;
pub mod run;
pub mod shared;
pub mod tcp_secret;
pub mod top;
pub mod views;
pub mod worker;
