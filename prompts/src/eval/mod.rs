pub mod facts;
pub mod metrics;
pub mod run;
