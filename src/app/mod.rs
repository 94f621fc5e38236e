//! The application: the command line and the environment (`args`), turned into one
//! validated configuration (`configure`), run and logged (`run`), with the run's metrics
//! pushed at the end (`metrics`). Nothing below `app` knows about the command line.

pub mod args;
pub mod configure;
pub mod metrics;
pub mod run;

pub use run::main;
