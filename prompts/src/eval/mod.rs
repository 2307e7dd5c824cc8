pub mod metrics;
pub mod run;
