//! The application: the command line and the environment, declared (`args`), parsed with
//! duplicity's implicit verbs and refusals a person can act on (`parse`, with each verb's
//! help from `help`), turned into one validated configuration (`configure`), run and logged
//! (`run`), with the run's metrics pushed at the end (`metrics`). Nothing below `app` knows
//! about the command line.

pub mod args;
pub mod help;
pub mod parse;
pub mod configure;
pub mod run;
pub mod metrics;

pub use run::main;
